"""phaselab: the computational library behind *Phase Transitions in Learning*.

Chapters narrate, plot and check; this package computes. Modules:

Shared by every chapter

- :mod:`phaselab.config`        run scale (``PHASEBOOK_SCALE``), devices, seeded generators
- :mod:`phaselab.validation`    argument checks that raise ``ValueError`` naming the parameter
- :mod:`phaselab.stats`         fits with uncertainties, standard errors
- :mod:`phaselab.plotting`      the book's figure style (one place)
- :mod:`phaselab.ledger`        claims ledgers: paper value, ours, tolerance, verdict
- :mod:`phaselab.report`        the reproducibility report gathered from every ledger
- :mod:`phaselab.records`       chapters' runs at the papers' scale, with provenance and staleness

Chapter 1 (L2 phase transitions)

- :mod:`phaselab.ziyin_ueda`    batched training of scalar-output deep nets over weight decays
- :mod:`phaselab.linear_nets`   rank transitions of deep linear nets: thresholds, saddles, barriers

Chapter 2 (Arrhenius escape)

- :mod:`phaselab.ensemble`      an ensemble of deep linear nets trained in lockstep
- :mod:`phaselab.escape`        censored escape times, traps, Kramers-Langer rates

Chapter 3 (flat-minimum freezing)

- :mod:`phaselab.two_valley`    the two-valley model, its simulator and theory
- :mod:`phaselab.flatness`      flatness, Jaccard similarity and freezing in an MLP

Chapter 4 (DMFT and BBP thresholds)

- :mod:`phaselab.single_neuron` the single-neuron network and its Hessian weight g(y, z)
- :mod:`phaselab.spectra`       BBP, generalised Marchenko-Pastur, the outlier equation
- :mod:`phaselab.dmft`          dynamical mean-field theory of gradient descent, delta_NN
- :mod:`phaselab.neuron_gd`     finite-size gradient descent on the single neuron, batched
"""

__version__ = "0.1.0"

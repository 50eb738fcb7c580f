"""phaselab: the computational library behind *Phase Transitions in Learning*.

Chapters narrate, plot and check; this package computes. Modules:

- :mod:`phaselab.config`     run scale (``PHASEBOOK_SCALE``), devices, seeded generators
- :mod:`phaselab.validation` argument checks that raise ``ValueError`` naming the parameter
- :mod:`phaselab.stats`      fits with uncertainties shared by several chapters
- :mod:`phaselab.plotting`   the book's figure style (one place)
- :mod:`phaselab.ledger`     claims ledgers: paper value, ours, tolerance, verdict
"""

__version__ = "0.1.0"

"""Train a whole ensemble of deep linear networks in lockstep: one batched tensor program.

Every member ``m`` of the ensemble is a depth-``L`` linear network ``x -> W_L ... W_1 x`` whose
weights are the ``m``-th slices of ``L`` tensors of shape ``(n_members, d_out, d_in)``.  All
members are updated at once with batched matrix products; there is no Python loop over members.

Loss (the book's convention, Ersoy & Wiesner Eq. 1 read with the depth factor of their Eq. 2):

    loss = (1/2) mean_samples ||y - W_L ... W_1 x||^2  +  (beta/2) sum_l ||W_l||_F^2,

so that with ``Sigma_xx = I`` one singular mode of the end-to-end map costs
``(1/2)(lambda - eta)^2 + (L beta / 2) lambda^(2/L)``, and ``torch.optim.SGD(weight_decay=beta)``
on the data term implements the same regulariser.

Because the network is linear, a minibatch enters the gradient only through its second moments
``S_xx = mean x x^T`` and ``S_yx = mean y x^T``: with ``E = W_L ... W_1`` and ``G = E S_xx - S_yx``
the gradient is ``dW_l = (W_L ... W_{l+1})^T G (W_{l-1} ... W_1)^T + beta W_l``.  The engine forms
these products for all members at once.

Update rule per step (Euler-Maruyama discretisation of overdamped Langevin dynamics at
temperature ``T``; ``T = 0`` is plain minibatch SGD with weight decay):

    W_l <- W_l - lr * dW_l + sqrt(2 lr T) * N(0, 1)      (noise drawn independently per entry).

Minibatches: each epoch every member draws its own random permutation of the training set (from
one seeded NumPy generator, :func:`epoch_permutations`) and walks through it in ``n // B`` batches of
``B`` samples (the remainder is dropped, as ``DataLoader(drop_last=True)``); when ``B >= n`` the
epoch is a single full-batch step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from phaselab import config, validation

PerMember = float | Sequence[float] | np.ndarray | torch.Tensor


def init_weights(
    n_members: int,
    widths: Sequence[int],
    init_scale: float,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float64,
) -> list[torch.Tensor]:
    """Independent Gaussian initial weights for an ensemble of linear networks.

    ``widths = [d_in, h_1, ..., h_{L-1}, d_out]`` gives ``L = len(widths) - 1`` layers; layer ``l``
    has shape ``(n_members, widths[l+1], widths[l])`` and entries ``N(0, init_scale^2)``
    (Appendix A of Ersoy & Wiesner uses ``init_scale = 1/sqrt(w)`` for hidden width ``w``).  The
    tensors live on the generator's device.
    """
    n_members = validation.integer("n_members", n_members, minimum=1)
    widths = _check_widths(widths)
    init_scale = validation.positive("init_scale", init_scale)
    device = generator.device
    return [
        init_scale * torch.randn(n_members, d_out, d_in, generator=generator, dtype=dtype, device=device)
        for d_in, d_out in zip(widths[:-1], widths[1:])
    ]


def end_to_end(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The end-to-end maps ``W_L ... W_1`` of all members, shape ``(n_members, d_out, d_in)``."""
    product = weights[0]
    for layer in weights[1:]:
        product = torch.bmm(layer, product)
    return product


def epoch_permutations(
    n_members: int, n_samples: int, generator: np.random.Generator, device: str | torch.device | None = None
) -> torch.Tensor:
    """One random ordering of the training set per member, shape ``(n_members, n_samples)``, on ``device``.

    Drawn on the host by NumPy's row-wise Fisher-Yates shuffle (``Generator.permuted``), which on a
    CPU is about 5x faster than sorting random keys with ``torch.argsort`` (the two draw different
    orderings: the random stream of minibatches changed when the engine switched), and the same on
    every device.  Both the engine and the baselines of ``benchmarks/ensemble.py`` call this with the
    same generator, so they see the same minibatches.
    """
    n_members = validation.integer("n_members", n_members, minimum=1)
    n_samples = validation.integer("n_samples", n_samples, minimum=1)
    if not isinstance(generator, np.random.Generator):
        raise ValueError(f"generator must be a numpy.random.Generator (config.numpy_rng), got {type(generator).__name__}")
    orders = generator.permuted(np.broadcast_to(np.arange(n_samples), (n_members, n_samples)), axis=1)
    return torch.from_numpy(orders).to(config.resolve_device(device) if device is not None else "cpu")


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """Number of SGD steps in one epoch: ``n // B`` (remainder dropped), at least one."""
    return max(1, n_samples // batch_size)


@dataclass
class EnsembleResult:
    """What :func:`train` records.

    ``weights``: final weights (same layout as the input; usable as a checkpoint).
    ``epochs``: the recorded epochs, shape ``(n_recorded,)`` (epoch 0 is the initial state).
    ``singular_values``: singular values of ``W_L ... W_1``, shape ``(n_recorded, n_members, rank)``,
    in decreasing order.
    ``train_loss``, ``test_loss``: the data term ``(1/2) mean ||y - E x||^2`` on the training and
    test sets, shape ``(n_recorded, n_members)`` (``test_loss`` is ``None`` without a test set);
    ``objective``: ``train_loss`` plus the weight-decay term ``(beta/2) sum_l ||W_l||^2``.
    ``escape_epoch``: per member, the first epoch (checked every ``escape_check_every`` epochs,
    independently of the records) at which singular value ``escape_index`` crossed ``escape_threshold``; ``inf`` when it
    never did (a right-censored observation at ``epochs_run``).  ``None`` without escape detection.
    ``epochs_run``: epochs actually trained (fewer than asked when training stopped early).
    ``mode_amplitudes``: with ``record_modes=(U, V)``, the projections ``u_k^T (W_L ... W_1) v_k``
    of the end-to-end map onto the given pairs of output/input directions, shape
    ``(n_recorded, n_members, k)``; ``None`` otherwise.  With ``U``, ``V`` the singular vectors of
    ``Sigma_yx`` these are the amplitudes ``lambda_k`` of the data's modes (Eq. 2), tracked mode by
    mode rather than sorted by size.
    """

    weights: list[torch.Tensor]
    epochs: np.ndarray
    singular_values: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray | None
    objective: np.ndarray
    escape_epoch: np.ndarray | None
    epochs_run: int
    mode_amplitudes: np.ndarray | None = None

    def first_crossing(self, index: int, threshold: float, *, above: bool = True) -> np.ndarray:
        """Per member, the first recorded epoch at which singular value ``index`` is above (or below)
        ``threshold``; ``inf`` where it never is."""
        index = validation.integer("index", index, minimum=0, maximum=self.singular_values.shape[2] - 1)
        threshold = validation.finite_real("threshold", threshold)
        return self._first(self.singular_values[:, :, index], threshold, above)

    def mode_crossing(self, index: int, threshold: float, *, above: bool = True) -> np.ndarray:
        """Per member, the first recorded epoch at which mode amplitude ``index`` (see
        ``mode_amplitudes``) is above (or below) ``threshold``; ``inf`` where it never is."""
        if self.mode_amplitudes is None:
            raise ValueError("mode_amplitudes were not recorded: pass record_modes to train")
        index = validation.integer("index", index, minimum=0, maximum=self.mode_amplitudes.shape[2] - 1)
        threshold = validation.finite_real("threshold", threshold)
        return self._first(self.mode_amplitudes[:, :, index], threshold, above)

    def _first(self, values: np.ndarray, threshold: float, above: bool) -> np.ndarray:
        crossed = values > threshold if above else values < threshold
        first = np.argmax(crossed, axis=0)
        return np.where(crossed.any(axis=0), self.epochs[first].astype(float), np.inf)


def train(
    weights: Sequence[torch.Tensor],
    x_train: torch.Tensor | np.ndarray,
    y_train: torch.Tensor | np.ndarray,
    *,
    epochs: int,
    lr: PerMember,
    batch_size: int | Sequence[int] | np.ndarray | torch.Tensor,
    beta: PerMember,
    temperature: PerMember = 0.0,
    x_test: torch.Tensor | np.ndarray | None = None,
    y_test: torch.Tensor | np.ndarray | None = None,
    seed: int = 0,
    record_every: int = 1,
    device: str | torch.device | None = None,
    escape_index: int | None = None,
    escape_threshold: float | None = None,
    escape_above: bool = True,
    escape_check_every: int = 1,
    stop_when_escaped: bool = False,
    record_modes: tuple[np.ndarray, np.ndarray] | None = None,
) -> EnsembleResult:
    """Train every member of the ensemble by minibatch SGD (plus Langevin noise when ``T > 0``).

    ``weights``: per-layer tensors ``(n_members, d_out, d_in)`` (from :func:`init_weights` or a
    previous result's ``.weights``); they are copied, never modified.  ``x_train`` ``(n, d_in)``
    and ``y_train`` ``(n, d_out)`` are shared by all members, or ``(n_members, n, .)`` to give
    each member its own data set (same ``n``).  ``lr``, ``beta`` and ``temperature`` are floats
    or per-member arrays of shape ``(n_members,)``; ``batch_size`` is an int or per-member ints
    (a member with fewer steps per epoch simply idles for the remaining steps of the epoch).
    Records every ``record_every`` epochs (and the last).  With ``escape_index`` and
    ``escape_threshold`` the escape epoch of every member is detected after every
    ``escape_check_every``-th epoch (default: every epoch); with ``stop_when_escaped`` training
    stops once every member has escaped.  With ``record_modes=(U, V)``, arrays of shapes
    ``(d_out, k)`` and ``(d_in, k)``, every record also stores ``u_j^T (W_L ... W_1) v_j`` for each
    column pair ``j`` (``EnsembleResult.mode_amplitudes``).  Minibatch orders come from a NumPy
    generator and Langevin noise from a torch generator, both seeded with ``seed``.  Runs on ``device`` (default: CUDA if present).
    """
    device = config.resolve_device(device)
    weights = [w.detach().to(device).clone() for w in weights]
    _check_weights(weights)
    n_members, dtype = weights[0].shape[0], weights[0].dtype
    epochs = validation.integer("epochs", epochs, minimum=0)
    record_every = validation.integer("record_every", record_every, minimum=1)
    escape_check_every = validation.integer("escape_check_every", escape_check_every, minimum=1)
    seed = validation.integer("seed", seed, minimum=0)
    lr_m = _per_member("lr", lr, n_members, dtype, device, positive=True)
    beta_m = _per_member("beta", beta, n_members, dtype, device)
    temp_m = _per_member("temperature", temperature, n_members, dtype, device)
    x_train, y_train = _check_data("x_train", "y_train", x_train, y_train, weights, dtype, device)
    n_samples = x_train.shape[-2]
    batch_m = _per_member_batch(batch_size, n_members, n_samples, device)
    has_test = x_test is not None or y_test is not None
    if has_test:
        x_test, y_test = _check_data("x_test", "y_test", x_test, y_test, weights, dtype, device)
    detect = escape_index is not None or escape_threshold is not None
    if detect:
        if escape_index is None or escape_threshold is None:
            raise ValueError("escape_index and escape_threshold must be given together")
        escape_index = validation.integer("escape_index", escape_index, minimum=0, maximum=min(weights[0].shape[2], weights[-1].shape[1]) - 1)
        escape_threshold = validation.finite_real("escape_threshold", escape_threshold)
    elif stop_when_escaped:
        raise ValueError("stop_when_escaped needs escape_index and escape_threshold")
    modes = None if record_modes is None else _check_modes(record_modes, weights, dtype, device)

    generator = config.torch_generator(seed, device)
    order_generator = config.numpy_rng(seed)
    train_moments = _moments(x_train, y_train)
    test_moments = _moments(x_test, y_test) if has_test else None
    plan = _BatchPlan(batch_m, n_samples)
    sample_moments = None if plan.full_batch else _sample_moments(x_train, y_train)
    net = _MembersLast(weights)
    decay_m = 1.0 - lr_m * beta_m
    noise_scale = torch.sqrt(2.0 * lr_m * temp_m)
    noisy = bool((temp_m > 0).any())
    # float32 normals cast to float64 are ~5x faster on a CPU (benchmarks/ensemble_kernels.py)
    noise_dtype = torch.float32 if device.type == "cpu" else dtype

    records: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]] = []
    escape_epoch = torch.full((n_members,), float("inf"), dtype=dtype, device=device)

    def record(epoch: int) -> None:
        product = net.end_to_end()
        train_loss = _data_loss(product, train_moments)
        test_loss = _data_loss(product, test_moments) if has_test else None
        penalty = 0.5 * beta_m * net.theta.square().sum(dim=0)
        amplitudes = None if modes is None else torch.einsum("ok,moi,ik->mk", modes[0], product, modes[1])
        records.append((epoch, torch.linalg.svdvals(product), train_loss, test_loss, train_loss + penalty, amplitudes))

    record(0)
    epoch = 0
    full_sxx, full_syx = (m.permute(1, 2, 0) for m in train_moments[:2])
    for epoch in range(1, epochs + 1):
        stop = False
        if not plan.full_batch:
            order = epoch_permutations(n_members, n_samples, order_generator, device)
            batch_sxx, batch_syx = plan.epoch_moments(sample_moments, order)
        for step in range(plan.steps):
            if plan.full_batch:
                sxx, syx = full_sxx, full_syx
            else:
                sxx, syx = batch_sxx[step], batch_syx[step]
            step_lr, step_decay, step_noise = lr_m, decay_m, noise_scale
            if plan.idle_at(step):
                active = plan.active(step).to(dtype)
                step_lr, step_noise = lr_m * active, noise_scale * active
                step_decay = 1.0 - step_lr * beta_m
            net.step(step_lr, step_decay, sxx, syx)
            if noisy:
                noise = torch.randn(net.theta.shape, generator=generator, dtype=noise_dtype, device=device)
                net.theta.add_(step_noise * noise.to(dtype))
        if detect and (epoch % escape_check_every == 0 or epoch == epochs):
            sigma = torch.linalg.svdvals(net.end_to_end())[:, escape_index]
            crossed = sigma > escape_threshold if escape_above else sigma < escape_threshold
            escape_epoch = torch.where(crossed & torch.isinf(escape_epoch), float(epoch), escape_epoch)
            # the only host-device synchronisation of the loop, and only on checking epochs
            stop = stop_when_escaped and bool(torch.isfinite(escape_epoch).all())
        last = epoch == epochs
        if epoch % record_every == 0 or last or stop:
            record(epoch)
        if stop:
            break

    def stack(i: int) -> np.ndarray:
        return torch.stack([r[i] for r in records]).cpu().numpy()

    return EnsembleResult(
        weights=net.members_first(),
        epochs=np.array([r[0] for r in records]),
        singular_values=stack(1),
        train_loss=stack(2),
        test_loss=stack(3) if has_test else None,
        objective=stack(4),
        # float64 whatever the weights' dtype: times computed from it must not exceed the horizon by round-off
        escape_epoch=escape_epoch.cpu().numpy().astype(np.float64) if detect else None,
        epochs_run=epoch,
        mode_amplitudes=stack(5) if modes is not None else None,
    )


def _mm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Matrix product of members-last stacks: ``(i, j, M) x (j, k, M) -> (i, k, M)``.

    For the small matrices of these networks one broadcast multiply-and-sum over all members beats
    ``torch.bmm`` on members-first copies, which runs one tiny GEMM per member (1.7x for
    ``W3 W2 W1`` of the 2-10-10-2 network at 200 members on 2 CPU threads:
    ``benchmarks/ensemble_kernels.py``), and needs no transposed copies of the weights.
    """
    return torch.sum(a[:, :, None, :] * b[None, :, :, :], dim=1, out=out)


def _t(a: torch.Tensor) -> torch.Tensor:
    """Transpose of every member's matrix in a members-last stack."""
    return a.transpose(0, 1)


class _MembersLast:
    """All weights of the ensemble in one flat ``(D, n_members)`` tensor, with per-layer views
    ``(d_out, d_in, n_members)``; the update is then one operation on the flat tensor."""

    def __init__(self, weights: list[torch.Tensor]):
        self.shapes = [tuple(w.shape[1:]) for w in weights]
        self.theta = torch.cat([w.permute(1, 2, 0).reshape(-1, w.shape[0]) for w in weights], dim=0).contiguous()
        sizes = [o * i for o, i in self.shapes]
        self.layers = [block.view(o, i, -1) for block, (o, i) in zip(self.theta.split(sizes, dim=0), self.shapes)]
        self.gradient = torch.empty_like(self.theta)
        self.gradient_layers = [block.view(o, i, -1) for block, (o, i) in zip(self.gradient.split(sizes, dim=0), self.shapes)]

    def end_to_end(self) -> torch.Tensor:
        """``W_L ... W_1`` of every member, members first ``(M, d_out, d_in)``."""
        product = self.layers[0]
        for layer in self.layers[1:]:
            product = _mm(layer, product)
        return product.permute(2, 0, 1)

    def data_gradient(self, sxx: torch.Tensor, syx: torch.Tensor) -> torch.Tensor:
        """Flat gradient ``(D, M)`` of the data term for moments ``sxx`` ``(d_in, d_in, M or 1)`` and
        ``syx`` ``(d_out, d_in, M or 1)``: ``dW_l = (W_L..W_{l+1})^T G (W_{l-1}..W_1)^T`` with
        ``G = E S_xx - S_yx`` (the chain rule of the data term, Eq. 1).  Written into one buffer that
        every step reuses (the next call overwrites it)."""
        prefix = [self.layers[0]]  # prefix[l] = W_{l+1} ... W_1 (0-based)
        for layer in self.layers[1:]:
            prefix.append(_mm(layer, prefix[-1]))
        left = _mm(prefix[-1], sxx).sub_(syx)  # G, then (W_L..W_{l+1})^T G from the top down
        for l in range(len(self.layers) - 1, 0, -1):
            _mm(left, _t(prefix[l - 1]), out=self.gradient_layers[l])
            left = _mm(_t(self.layers[l]), left)
        self.gradient_layers[0].copy_(left)
        return self.gradient

    def step(self, lr: torch.Tensor, decay: torch.Tensor, sxx: torch.Tensor, syx: torch.Tensor) -> None:
        """One SGD step with weight decay, ``theta <- theta - lr (dL/dtheta + beta theta)``, computed as
        ``decay * theta - lr * dL/dtheta`` with ``decay = 1 - lr beta`` per member (two in-place ops)."""
        gradient = self.data_gradient(sxx, syx)  # before theta changes
        self.theta.mul_(decay).addcmul_(lr, gradient, value=-1.0)

    def members_first(self) -> list[torch.Tensor]:
        """The weights in the public layout ``(n_members, d_out, d_in)`` (copies)."""
        return [layer.permute(2, 0, 1).contiguous() for layer in self.layers]


class _BatchPlan:
    """Which samples every member uses at each step of an epoch (per-member batch sizes)."""

    def __init__(self, batch: torch.Tensor, n_samples: int):
        self.batch = torch.clamp(batch, max=n_samples)
        self.member_steps = torch.clamp(n_samples // self.batch, min=1)
        self.steps = int(self.member_steps.max())
        self.full_batch = bool((batch >= n_samples).all())
        self.uniform = bool((self.batch == self.batch[0]).all())
        self._idle = [bool((step >= self.member_steps).any()) for step in range(self.steps)]

    def idle_at(self, step: int) -> bool:
        """Whether some member has finished its epoch before ``step``."""
        return self._idle[step]

    def active(self, step: int) -> torch.Tensor:
        """Which members take a step at ``step``, shape ``(M,)``."""
        return step < self.member_steps

    def epoch_moments(self, sample_moments: tuple[torch.Tensor, torch.Tensor], order: torch.Tensor):
        """Minibatch moments of every step of an epoch: ``S_xx`` ``(steps, d_in, d_in, M)`` and
        ``S_yx`` ``(steps, d_out, d_in, M)``, from running sums along each member's ordering."""
        outer_xx, outer_yx = sample_moments  # per-sample x x^T and y x^T, (n or M, n, d, d)
        d_in, d_out = outer_xx.shape[-1], outer_yx.shape[-2]
        flat = torch.cat([outer_xx.flatten(-2), outer_yx.flatten(-2)], dim=-1)
        n_members, n_samples = order.shape
        k = flat.shape[-1]
        if flat.dim() == 3:  # per-member data: member m's samples are rows m n ... m n + n - 1
            order = order + n_samples * torch.arange(n_members, device=order.device)[:, None]
            flat = flat.reshape(-1, k)
        # rows gathered with index_select (several times faster than advanced indexing on a CPU)
        if self.uniform:
            size = int(self.batch[0])
            rows = order[:, : self.steps * size].T.reshape(-1)  # step-major, members last
            sums = flat.index_select(0, rows).view(self.steps, size, n_members, k).sum(dim=1)
            means = (sums / size).transpose(1, 2)  # (steps, k, M)
        else:
            ordered = flat.index_select(0, order.reshape(-1)).view(n_members, n_samples, k)
            running = torch.nn.functional.pad(ordered.cumsum(dim=1), (0, 0, 1, 0))  # (M, n+1, k)
            steps = torch.arange(self.steps, device=order.device)
            start = (steps[None, :] * self.batch[:, None]).clamp(max=n_samples)
            end = (start + self.batch[:, None]).clamp(max=n_samples)
            sums = running.gather(1, end[:, :, None].expand(-1, -1, k)) - running.gather(1, start[:, :, None].expand(-1, -1, k))
            means = (sums / self.batch[:, None, None].to(flat.dtype)).permute(1, 2, 0)
        sxx = means[:, : d_in * d_in].reshape(self.steps, d_in, d_in, -1)
        syx = means[:, d_in * d_in :].reshape(self.steps, d_out, d_in, -1)
        return sxx, syx


def _sample_moments(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample outer products ``x x^T`` and ``y x^T``."""
    return x[..., :, None] * x[..., None, :], y[..., :, None] * x[..., None, :]


def _moments(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Second moments ``S_xx``, ``S_yx`` and ``tr S_yy`` of a data set (shared or per member)."""
    if x.dim() == 2:
        x, y = x[None], y[None]
    n = x.shape[1]
    sxx = torch.matmul(x.transpose(1, 2), x) / n
    syx = torch.matmul(y.transpose(1, 2), x) / n
    tr_syy = y.square().sum(dim=(1, 2)) / n
    return sxx, syx, tr_syy


def _data_loss(product: torch.Tensor, moments: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``(1/2) mean ||y - E x||^2 = (1/2)[tr(E S_xx E^T) - 2 tr(E^T S_yx) + tr S_yy]`` per member."""
    sxx, syx, tr_syy = moments
    quad = (torch.matmul(product, sxx) * product).sum(dim=(1, 2))
    cross = (product * syx).sum(dim=(1, 2))
    return 0.5 * (quad - 2.0 * cross + tr_syy)


def _check_widths(widths: Sequence[int]) -> list[int]:
    widths = list(widths)
    if len(widths) < 2:
        raise ValueError(f"widths must list at least an input and an output width, got {widths!r}")
    return [validation.integer(f"widths[{i}]", w, minimum=1) for i, w in enumerate(widths)]


def _check_weights(weights: list[torch.Tensor]) -> None:
    if len(weights) == 0:
        raise ValueError("weights must contain at least one layer")
    n_members = weights[0].shape[0]
    for i, w in enumerate(weights):
        if w.dim() != 3 or w.shape[0] != n_members:
            raise ValueError(f"weights[{i}] must have shape (n_members={n_members}, d_out, d_in), got {tuple(w.shape)}")
        if i > 0 and w.shape[2] != weights[i - 1].shape[1]:
            raise ValueError(f"weights[{i}] takes {w.shape[2]} inputs but weights[{i-1}] gives {weights[i-1].shape[1]}")
        if not w.is_floating_point() or not bool(torch.isfinite(w).all()):
            raise ValueError(f"weights[{i}] must be a floating-point tensor with finite entries")


def _check_modes(record_modes, weights, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``record_modes`` as two tensors ``(d_out, k)`` and ``(d_in, k)`` with finite entries."""
    d_in, d_out = weights[0].shape[2], weights[-1].shape[1]
    if not isinstance(record_modes, (tuple, list)) or len(record_modes) != 2:
        raise ValueError(f"record_modes must be a pair (U of shape (d_out, k), V of shape (d_in, k)), got {type(record_modes).__name__}")
    left, right = (
        validation.finite_array(f"record_modes[{i}]", m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else m, ndim=2)
        for i, m in enumerate(record_modes)
    )
    if left.shape[0] != d_out or right.shape[0] != d_in or left.shape[1] != right.shape[1] or left.shape[1] < 1:
        raise ValueError(f"record_modes must have shapes ({d_out}, k) and ({d_in}, k) with k >= 1, got {left.shape} and {right.shape}")
    return (torch.as_tensor(np.ascontiguousarray(left), dtype=dtype, device=device),
            torch.as_tensor(np.ascontiguousarray(right), dtype=dtype, device=device))


def _check_data(x_name: str, y_name: str, x, y, weights, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    if x is None or y is None:
        raise ValueError(f"{x_name} and {y_name} must be given together")
    x = torch.as_tensor(x, dtype=dtype, device=device)
    y = torch.as_tensor(y, dtype=dtype, device=device)
    d_in, d_out, n_members = weights[0].shape[2], weights[-1].shape[1], weights[0].shape[0]
    if x.dim() not in (2, 3) or x.shape[-1] != d_in:
        raise ValueError(f"{x_name} must have shape (n, {d_in}) or (n_members, n, {d_in}), got {tuple(x.shape)}")
    if y.shape[:-1] != x.shape[:-1] or y.shape[-1] != d_out:
        raise ValueError(f"{y_name} must have shape {tuple(x.shape[:-1]) + (d_out,)}, got {tuple(y.shape)}")
    if x.dim() == 3 and x.shape[0] != n_members:
        raise ValueError(f"{x_name} with per-member data must have {n_members} members, got {x.shape[0]}")
    if x.shape[-2] < 1:
        raise ValueError(f"{x_name} must contain at least one sample")
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise ValueError(f"{x_name} and {y_name} must have finite entries")
    return x, y


def _per_member(name: str, value: PerMember, n_members: int, dtype, device, *, positive: bool = False) -> torch.Tensor:
    """A float or a ``(n_members,)`` array of finite values (> 0 or >= 0) as a tensor."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        check = validation.positive if positive else validation.non_negative
        return torch.full((n_members,), check(name, value), dtype=dtype, device=device)
    array = validation.finite_array(name, torch.as_tensor(value).detach().cpu().numpy(), ndim=1)
    if array.shape != (n_members,):
        raise ValueError(f"{name} must be a number or have shape ({n_members},), got {array.shape}")
    if (positive and np.any(array <= 0)) or np.any(array < 0):
        raise ValueError(f"{name} must have entries {'> 0' if positive else '>= 0'}, got {array}")
    return torch.as_tensor(array, dtype=dtype, device=device)


def _per_member_batch(value, n_members: int, n_samples: int, device) -> torch.Tensor:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return torch.full((n_members,), validation.integer("batch_size", value, minimum=1), dtype=torch.long, device=device)
    array = np.asarray(torch.as_tensor(value).detach().cpu().numpy())
    if array.shape != (n_members,) or not np.issubdtype(array.dtype, np.integer) or np.any(array < 1):
        raise ValueError(f"batch_size must be an integer >= 1 or {n_members} such integers, got {value!r}")
    return torch.as_tensor(array, dtype=torch.long, device=device)

"""Valley hopping and freezing in a real network (Yang et al. 2026, Sec. II.1-II.3).

Many small MLPs (ReLU, biases) are trained at once as one batched tensor program on
scikit-learn's 8x8 handwritten digits (shipped with scikit-learn; no download).  Every run starts
from the same initial weights and differs only in its mini-batch order.  The continuation protocol
branches full-batch gradient descent (GD) from checkpoints of each SGD run; GD does not hop, so its
endpoint names the valley the SGD run occupied at that checkpoint.  From the endpoints:

- flatness F (Eq. 1): the inverse geometric mean of the top-N eigenvalues of the Hessian of the
  full training loss with respect to the middle weight matrix, by batched Lanczos on
  Hessian-vector products;
- Jaccard similarity of misclassified test sets (Eq. 2);
- freezing time t_f (Eq. 3): the earliest checkpoint after which all endpoints are similar;
- endpoint radius r_theta (Eq. 4): RMS spread of the final endpoints over repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from phaselab import config, ensemble, validation

Params = list[torch.Tensor]  # [W1, b1, W2, b2, W3, b3], each with a leading run axis


@dataclass(frozen=True)
class Digits:
    """A class-balanced train/test split of the 8x8 digits, pixels scaled to [-1, 1]."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_split(n_train_per_class: int, seed: int = 0, device: str | torch.device | None = None) -> Digits:
    """``n_train_per_class`` training images per digit; every other image is a test image."""
    n_train_per_class = validation.integer("n_train_per_class", n_train_per_class, minimum=1, maximum=170)
    data = load_digits()
    x = data.data / 16.0 * 2.0 - 1.0
    labels = data.target
    rng = config.numpy_rng(seed)
    train = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n_train_per_class] for c in range(10)])
    test = np.setdiff1d(np.arange(labels.size), train)
    dev = config.resolve_device(device)

    def as_t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.as_tensor(a, dtype=dtype, device=dev)

    return Digits(as_t(x[train], torch.float32), as_t(labels[train], torch.int64), as_t(x[test], torch.float32), as_t(labels[test], torch.int64))


def init_params(sizes: tuple[int, ...], n_runs: int, seed: int = 0, device: str | torch.device | None = None) -> Params:
    """Kaiming-normal (fan-in) weights and zero biases, one draw shared by all ``n_runs`` runs."""
    n_runs = validation.integer("n_runs", n_runs, minimum=1)
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes must list at least two positive layer widths, got {sizes!r}")
    dev = config.resolve_device(device)
    gen = config.torch_generator(seed)
    params: Params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weight = torch.randn(fan_in, fan_out, generator=gen) * np.sqrt(2.0 / fan_in)
        params += [weight.expand(n_runs, -1, -1).clone().to(dev), torch.zeros(n_runs, fan_out, device=dev)]
    return params


def logits(params: Params, x: torch.Tensor) -> torch.Tensor:
    """Batched forward pass: ``x`` is (runs, n, d) or (n, d) shared by all runs."""
    h = x if x.dim() == 3 else x.expand(params[0].shape[0], -1, -1)
    n_layers = len(params) // 2
    for i in range(n_layers):
        h = torch.baddbmm(params[2 * i + 1][:, None, :], h, params[2 * i])
        if i < n_layers - 1:
            h = torch.relu(h)
    return h


def per_run_loss(params: Params, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each run, shape (runs,)."""
    out = logits(params, x)
    lab = labels if labels.dim() == 2 else labels.expand(out.shape[0], -1)
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), lab.reshape(-1), reduction="none").view(lab.shape).mean(dim=1)


def _gradients(params: Params, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Every run's loss on its own batch and the gradient of each parameter tensor."""
    for p in params:
        p.requires_grad_(True)
    losses = per_run_loss(params, x, labels)
    grads = torch.autograd.grad(losses.sum(), params)
    for p in params:
        p.requires_grad_(False)
    return losses.detach(), grads


def _per_run(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-run ``values`` shaped to broadcast against ``like`` (runs first)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _step(params: Params, x: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """One gradient step of every run on its own batch; ``lr`` is per run (0 freezes a run)."""
    losses, grads = _gradients(params, x, labels)
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.sub_(_per_run(lr, p) * g)
    return losses


def train_sgd(params: Params, data: Digits, eta: float, batch_size: int, n_steps: int, n_checkpoints: int, seed: int = 0) -> tuple[np.ndarray, list[Params]]:
    """Plain SGD (no momentum, no weight decay), each run with its own shuffled batch order.

    Returns the checkpoint steps (``n_checkpoints`` evenly spaced from 0 to ``n_steps``) and the
    parameters at each of them.
    """
    eta = validation.positive("eta", eta)
    n_train = data.x_train.shape[0]
    batch_size = validation.integer("batch_size", batch_size, minimum=1, maximum=n_train)
    n_steps = validation.integer("n_steps", n_steps, minimum=1)
    n_checkpoints = validation.integer("n_checkpoints", n_checkpoints, minimum=2, maximum=n_steps + 1)
    checkpoint_steps = np.unique(np.round(np.linspace(0, n_steps, n_checkpoints)).astype(int))
    n_runs = params[0].shape[0]
    dev = params[0].device
    gen = config.numpy_rng(seed)
    lr = torch.full((n_runs,), eta, device=dev)
    params = [p.clone() for p in params]
    checkpoints = [[p.clone() for p in params]] if checkpoint_steps[0] == 0 else []
    per_epoch = ensemble.steps_per_epoch(n_train, batch_size)
    order = None
    for step in range(1, n_steps + 1):
        slot = (step - 1) % per_epoch
        if slot == 0:
            order = ensemble.epoch_permutations(n_runs, n_train, gen, dev)
        idx = order[:, slot * batch_size : (slot + 1) * batch_size]
        _step(params, data.x_train[idx], data.y_train[idx], lr)
        if step in checkpoint_steps:
            checkpoints.append([p.clone() for p in params])
    return checkpoint_steps, checkpoints


def continue_full_batch(
    params: Params, data: Digits, eta: float, max_steps: int, loss_tol: float, check_every: int = 10,
    momentum: float = 0.0, momentum_once_fitted: bool = False,
) -> tuple[Params, np.ndarray]:
    """Full-batch GD from each run's parameters until its training loss <= ``loss_tol`` with 100%
    training accuracy or ``max_steps``.  Returns the endpoints and the steps each run took.

    The stopping rule is checked every ``check_every`` steps; finished runs are dropped from the
    batch so that the cost follows the runs still descending.  ``momentum`` > 0: heavy-ball GD,
    v <- momentum v + g, theta <- theta - eta v (the paper's protocol is plain GD, momentum 0);
    with ``momentum_once_fitted`` a run descends plainly until a check finds 100% training accuracy.
    ``benchmarks/continuation.py`` compares these continuations with the faithful one.
    """
    eta = validation.positive("eta", eta)
    max_steps = validation.integer("max_steps", max_steps, minimum=1)
    loss_tol = validation.positive("loss_tol", loss_tol)
    check_every = validation.integer("check_every", check_every, minimum=1)
    momentum = validation.finite_real("momentum", momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    params = [p.clone() for p in params]
    velocity = [torch.zeros_like(p) for p in params] if momentum > 0 else []
    dev = params[0].device
    steps = torch.zeros(params[0].shape[0], dtype=torch.int64, device=dev)
    active = torch.arange(params[0].shape[0], device=dev)
    while active.numel() > 0:
        sub, sub_velocity = [p[active] for p in params], [v[active] for v in velocity]
        with torch.no_grad():
            fitted = train_accuracy(sub, data) == 1.0
            done = (per_run_loss(sub, data.x_train, data.y_train) <= loss_tol) & fitted
        done |= steps[active] >= max_steps
        keep = ~done
        active, sub, sub_velocity, fitted = active[keep], [p[keep] for p in sub], [v[keep] for v in sub_velocity], fitted[keep]
        if active.numel() == 0:
            break
        n = min(check_every, max_steps - int(steps[active].max()))
        lr = torch.full((active.numel(),), eta, device=dev)
        if momentum > 0:
            beta = torch.where(fitted, momentum, 0.0) if momentum_once_fitted else torch.full_like(lr, momentum)
        for _ in range(n):
            if momentum == 0:
                _step(sub, data.x_train, data.y_train, lr)
                continue
            _, grads = _gradients(sub, data.x_train, data.y_train)
            with torch.no_grad():
                for p, v, g in zip(sub, sub_velocity, grads):
                    v.mul_(_per_run(beta, v)).add_(g)
                    p.sub_(eta * v)
        steps[active] += n
        for full, part in zip(params + velocity, sub + sub_velocity):
            full[active] = part
    return params, steps.cpu().numpy()


def train_accuracy(params: Params, data: Digits) -> torch.Tensor:
    """Training accuracy of each run."""
    with torch.no_grad():
        return (logits(params, data.x_train).argmax(-1) == data.y_train).float().mean(dim=1)


def misclassified(params: Params, data: Digits) -> np.ndarray:
    """Boolean (runs, n_test): which test images each run gets wrong (the set E of Eq. 2)."""
    with torch.no_grad():
        return (logits(params, data.x_test).argmax(-1) != data.y_test).cpu().numpy()


def jaccard_matrix(errors: np.ndarray) -> np.ndarray:
    """Jaccard similarity ``|E_i & E_j| / |E_i | E_j|`` (Eq. 2) for every pair of rows of ``errors``.

    Two empty sets count as identical (similarity 1).
    """
    errors = np.asarray(errors, dtype=bool)
    if errors.ndim != 2:
        raise ValueError(f"errors must be a 2-d boolean array (endpoints, test images), got shape {errors.shape}")
    e = errors.astype(float)
    inter = e @ e.T
    sizes = e.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)


def jaccard_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Jaccard similarity (Eq. 2) of matching endpoints, ``a`` against ``b`` (broadcast) along the
    last axis (test images); two empty sets count as identical."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a and b must have broadcastable shapes, got {a.shape} and {b.shape}") from None
    if a.ndim < 1 or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"a and b must have the same last axis (test images), got shapes {a.shape} and {b.shape}")
    inter, union = (a & b).sum(axis=-1), (a | b).sum(axis=-1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def freezing_index(similarity: np.ndarray, threshold: float = 0.9) -> int:
    """Index c of the earliest checkpoint with Sim_J >= threshold for all i, j >= c (Eq. 3)."""
    similarity = validation.finite_array("similarity", similarity, ndim=2)
    threshold = validation.in_range("threshold", threshold, 0.0, 1.0)
    n = similarity.shape[0]
    first = n - 1
    for c in range(n - 2, -1, -1):
        if np.all(similarity[c, c:] >= threshold):  # rows below c were already checked
            first = c
        else:
            break
    return first


def endpoint_radius(params: Params) -> float:
    """RMS distance of the runs' flattened parameters from their mean, Eq. (4)."""
    flat = torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1).double()
    if flat.shape[0] < 2:
        raise ValueError("endpoint_radius needs at least two runs")
    return float(((flat - flat.mean(0)) ** 2).sum(1).mean().sqrt())


def top_hessian_eigenvalues(params: Params, data: Digits, layer: int = 1, n_top: int = 10, n_lanczos: int = 40, seed: int = 0) -> np.ndarray:
    """Top ``n_top`` eigenvalues of the Hessian of each run's full training loss with respect to the
    weight matrix of ``layer`` (0-based; 1 is the middle matrix of a 3-layer MLP).

    Batched Lanczos with full reorthogonalisation on Hessian-vector products (double backward).
    Returns an array (runs, n_top), largest first.
    """
    n_layers = len(params) // 2
    layer = validation.integer("layer", layer, minimum=0, maximum=n_layers - 1)
    weight = params[2 * layer].detach()
    n_runs, dim = weight.shape[0], weight[0].numel()
    n_lanczos = validation.integer("n_lanczos", n_lanczos, minimum=2, maximum=dim)
    n_top = validation.integer("n_top", n_top, minimum=1, maximum=n_lanczos)
    w = weight.clone().double().requires_grad_(True)
    others = [p.detach().double() for p in params]
    x_train = data.x_train.double()
    full = others[: 2 * layer] + [w] + others[2 * layer + 1 :]
    grad = torch.autograd.grad(per_run_loss(full, x_train, data.y_train).sum(), w, create_graph=True)[0].reshape(n_runs, dim)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(grad, w, grad_outputs=v, retain_graph=True)[0].reshape(n_runs, dim)

    gen = config.torch_generator(seed, w.device)
    basis = torch.zeros(n_runs, n_lanczos, dim, dtype=torch.float64, device=w.device)
    alpha = torch.zeros(n_runs, n_lanczos, dtype=torch.float64, device=w.device)
    beta = torch.zeros(n_runs, n_lanczos, dtype=torch.float64, device=w.device)
    v = torch.randn(n_runs, dim, generator=gen, dtype=torch.float64, device=w.device)
    v = v / v.norm(dim=1, keepdim=True)
    for j in range(n_lanczos):
        basis[:, j] = v
        hv = hvp(v).detach()
        alpha[:, j] = (hv * v).sum(1)
        # full reorthogonalisation against every previous Lanczos vector
        hv = hv - torch.einsum("rk,rkd->rd", torch.einsum("rkd,rd->rk", basis[:, : j + 1], hv), basis[:, : j + 1])
        hv = hv - torch.einsum("rk,rkd->rd", torch.einsum("rkd,rd->rk", basis[:, : j + 1], hv), basis[:, : j + 1])
        if j + 1 < n_lanczos:
            beta[:, j] = hv.norm(dim=1)
            v = hv / beta[:, j : j + 1].clamp_min(1e-30)
    tri = torch.diag_embed(alpha) + torch.diag_embed(beta[:, :-1], 1) + torch.diag_embed(beta[:, :-1], -1)
    eig = torch.linalg.eigvalsh(tri).cpu().numpy()[:, ::-1]
    return eig[:, :n_top].copy()


def flatness(eigenvalues: np.ndarray) -> np.ndarray:
    """Flatness F = (prod_i lambda_i)^(-1/N) over the last axis (Eq. 1); nan if any lambda <= 0."""
    eig = np.asarray(eigenvalues, dtype=float)
    positive = np.all(eig > 0, axis=-1)
    return np.where(positive, np.exp(-np.mean(np.log(np.where(eig > 0, eig, 1.0)), axis=-1)), np.nan)


def test_set_loss(params: Params, data: Digits) -> np.ndarray:
    """Mean test cross-entropy of each run."""
    with torch.no_grad():
        return per_run_loss(params, data.x_test, data.y_test).cpu().numpy()


def training_loss(params: Params, data: Digits) -> np.ndarray:
    """Full training cross-entropy of each run."""
    with torch.no_grad():
        return per_run_loss(params, data.x_train, data.y_train).cpu().numpy()


@dataclass(frozen=True)
class ContinuationResult:
    """One (eta, B) setting: ``n_runs`` SGD runs, each continued by GD from every checkpoint.

    Arrays are indexed (checkpoint, run): ``errors`` (.., n_test) misclassified test sets,
    ``test_loss``, ``train_loss`` (full training loss of the endpoint: the stopping rule only bounds
    it from above, so endpoints from later checkpoints may sit lower), ``converged`` (the GD
    stopping rule was met), ``flatness`` (Eq. 1; only filled
    for every checkpoint when requested, else only for the last); ``freezing_steps`` per threshold
    (dict) and run (Eq. 3); ``radius`` (Eq. 4) of the converged final endpoints.
    """

    eta: float
    batch_size: int
    checkpoint_steps: np.ndarray
    errors: np.ndarray
    test_loss: np.ndarray
    train_loss: np.ndarray
    converged: np.ndarray
    flatness: np.ndarray
    freezing_steps: dict[float, np.ndarray]
    radius: float


def continuation_experiment(
    params0: Params,
    data: Digits,
    eta: float,
    batch_size: int,
    n_checkpoints: int,
    max_continuation_steps: int,
    loss_tol: float,
    thresholds: tuple[float, ...] = (0.9, 0.99),
    flatness_at_all_checkpoints: bool = False,
    seed: int = 0,
    continuation_step: float | None = None,
    first_continuation: tuple[Params, np.ndarray] | None = None,
    sgd_time: float = 100.0,
) -> ContinuationResult:
    """The continuation protocol of Sec. II.1-II.3 for one (eta, B): SGD for T = ``sgd_time`` / eta
    steps (the paper: eta T = 100), full-batch GD from each of ``n_checkpoints`` checkpoints, then
    Eqs. (1)-(4).

    ``continuation_step``: the GD step of the continuation; None (the paper's protocol) uses the
    SGD step ``eta``.  A fixed step shared by all settings makes the continuation from the first
    checkpoint (``params0`` itself) the same for every setting: pass it once computed as
    ``first_continuation`` (the ``continue_full_batch`` output for ``params0``) to skip it.
    """
    config.reduce_allocation_overhead()
    n_runs = params0[0].shape[0]
    n_steps = int(round(validation.positive("sgd_time", sgd_time) / validation.positive("eta", eta)))
    gd_step = eta if continuation_step is None else validation.positive("continuation_step", continuation_step)
    steps, checkpoints = train_sgd(params0, data, eta, batch_size, n_steps, n_checkpoints, seed=seed)
    n_ck = len(steps)
    if first_continuation is not None:
        if continuation_step is None:
            raise ValueError("first_continuation needs a fixed continuation_step (shared by the settings)")
        first_ends, first_used = first_continuation
        if len(first_ends) != len(params0) or first_ends[0].shape != params0[0].shape or len(first_used) != n_runs:
            raise ValueError("first_continuation must be continue_full_batch(params0, ...) for these runs")
        rest = [torch.cat([c[i] for c in checkpoints[1:]]) for i in range(len(params0))]
        rest_ends, rest_used = continue_full_batch(rest, data, gd_step, max_continuation_steps, loss_tol)
        ends = [torch.cat([a, b]) for a, b in zip(first_ends, rest_ends)]
        used = np.concatenate([np.asarray(first_used), rest_used])
    else:
        stacked = [torch.cat([c[i] for c in checkpoints]) for i in range(len(params0))]
        ends, used = continue_full_batch(stacked, data, gd_step, max_continuation_steps, loss_tol)
    errors = misclassified(ends, data).reshape(n_ck, n_runs, -1)
    converged = (used < max_continuation_steps).reshape(n_ck, n_runs)
    flat = np.full((n_ck, n_runs), np.nan)
    if flatness_at_all_checkpoints:
        flat[:] = flatness(top_hessian_eigenvalues(ends, data)).reshape(n_ck, n_runs)
    else:
        final = [p[-n_runs:] for p in ends]
        flat[-1] = flatness(top_hessian_eigenvalues(final, data))
    freezing = {}
    for th in thresholds:
        freezing[th] = np.array([steps[freezing_index(jaccard_matrix(errors[:, r]), th)] for r in range(n_runs)])
    keep = torch.as_tensor(np.flatnonzero(converged[-1]), device=ends[0].device)
    final_converged = [p[-n_runs:][keep] for p in ends]
    radius = endpoint_radius(final_converged) if keep.numel() >= 2 else float("nan")
    return ContinuationResult(
        eta=eta,
        batch_size=batch_size,
        checkpoint_steps=steps,
        errors=errors,
        test_loss=test_set_loss(ends, data).reshape(n_ck, n_runs),
        train_loss=training_loss(ends, data).reshape(n_ck, n_runs),
        converged=converged,
        flatness=flat,
        freezing_steps=freezing,
        radius=radius,
    )


def spearman_greater(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman rank correlation of ``x`` and ``y`` and its one-sided p-value against no trend.

    For at most 9 points the p-value is exact: the share of all orderings of ``y`` whose correlation
    is at least the observed one (ties keep their average ranks); beyond that, scipy's t
    approximation.  The grids of the network experiment have few settings, where the
    approximation is poor.
    """
    from itertools import permutations

    from scipy import stats as scipy_stats

    x = validation.finite_array("x", x, ndim=1)
    y = validation.finite_array("y", y, ndim=1)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"x and y must have one shape with at least 3 entries, got {x.shape} and {y.shape}")
    rx, ry = scipy_stats.rankdata(x), scipy_stats.rankdata(y)
    rho = float(np.corrcoef(rx, ry)[0, 1])
    if x.size > 9:
        return rho, float(scipy_stats.spearmanr(x, y, alternative="greater").pvalue)
    orders = np.array(list(permutations(range(x.size))), dtype=np.int8)
    shuffled = ry[orders]
    cx = rx - rx.mean()
    cy = shuffled - shuffled.mean(axis=1, keepdims=True)
    null = (cy @ cx) / (np.sqrt((cx**2).sum()) * np.sqrt((cy**2).sum(axis=1)))
    return rho, float(np.mean(null >= rho - 1e-12))


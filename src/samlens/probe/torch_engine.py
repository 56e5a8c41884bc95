"""Fast engine: K logistic regressions fitted at once with batched solvers in torch.

All K problems share one or two large matrix products per iteration (the features are
read once for all regularisation values / balanced draws), which is what makes this
engine fast; each problem still has its own step sizes, curvature history and stopping
test, so the result is each problem's own optimum, as if fitted alone.

* :func:`fit_l2` — L2 multinomial (binary for two classes) logistic regression, the
  objective of scikit-learn's lbfgs solver, minimised by a batched L-BFGS.
* :func:`samlens.probe.torch_l1.fit_l1` — the L1 problem (DFR's), on the same helpers.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from samlens.probe.linear import LinearModels

# Below this many multiply-adds per evaluation the solvers are dominated by per-operation
# overhead, and on a busy CPU several threads only add synchronisation cost.
_SMALL_WORK = 4_000_000


def _precision(work: int, dtype, tol, tol64: float, tol32: float) -> tuple[torch.dtype, float]:
    """float64 where it is cheap (matches the float64 reference tightly), float32 where speed matters."""
    if dtype is None:
        dtype = torch.float64 if work < _SMALL_WORK else torch.float32
    if tol is None:
        tol = tol64 if dtype == torch.float64 else tol32
    return dtype, tol


@contextlib.contextmanager
def _threads_for(work: int, device: torch.device):
    if device.type != "cpu" or work >= _SMALL_WORK or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Design:
    """The feature matrix of K problems: one shared [N, D] or a batch [K, N, D]."""

    def __init__(self, X: torch.Tensor) -> None:
        self.X = X
        self.shared = X.dim() == 2

    def forward(self, W: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """[k, D, O] weights of problems idx → [k, N, O] scores (bias excluded)."""
        if self.shared:
            k, d, o = W.shape
            z = self.X @ W.permute(1, 0, 2).reshape(d, k * o)
            return z.reshape(-1, k, o).permute(1, 0, 2)
        return torch.bmm(self.X[idx], W)

    def backward(self, R: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """[k, N, O] residuals → [k, D, O] gradients Xᵀ R."""
        if self.shared:
            k, n, o = R.shape
            g = self.X.T @ R.permute(1, 0, 2).reshape(n, k * o)
            return g.reshape(-1, k, o).permute(1, 0, 2)
        return torch.bmm(self.X[idx].transpose(1, 2), R)


class _Logistic:
    """Weighted mean cross-entropy of K linear models, θ flattened to [K, D·O + O]."""

    def __init__(self, design: _Design, y: torch.Tensor, w: torch.Tensor, n_out: int) -> None:
        self.design, self.n_out = design, n_out
        self.d = design.X.shape[-1]
        self.y = y  # [K, N] class indices (0/1 for the binary logit)
        self.w = w / w.sum(1, keepdim=True)  # per-problem weights summing to 1
        if n_out > 1:
            self.onehot = torch.nn.functional.one_hot(y, n_out).to(w.dtype)

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = theta.shape[0]
        return theta[:, : self.d * self.n_out].reshape(k, self.d, self.n_out), theta[:, self.d * self.n_out :]

    def __call__(self, theta: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss [k], gradient [k, P]) for the problems ``idx``."""
        W, b = self.split(theta)
        z = self.design.forward(W, idx) + b[:, None, :]
        w = self.w[idx]
        if self.n_out == 1:
            z = z[..., 0]
            y = self.y[idx].to(z.dtype)
            loss = torch.nn.functional.softplus(z) - y * z
            r = (torch.sigmoid(z) - y)[..., None]
        else:
            lse = torch.logsumexp(z, dim=-1)
            loss = lse - z.gather(-1, self.y[idx][..., None])[..., 0]
            r = torch.exp(z - lse[..., None]) - self.onehot[idx]
        # The loss is summed in float64: the line search and the stopping test compare losses
        # whose differences are far below float32 resolution near the optimum.
        f = (w.double() * loss.double()).sum(1)
        r = r * w[..., None]
        grad = torch.cat([self.design.backward(r, idx).reshape(len(idx), -1), r.sum(1)], dim=1)
        return f, grad


def _two_loop(
    g: torch.Tensor,
    S: list[torch.Tensor],
    Y: list[torch.Tensor],
    rho: list[torch.Tensor],
    gamma: torch.Tensor,
) -> torch.Tensor:
    """L-BFGS two-loop recursion, batched over problems (rows): H·g from the stored curvature pairs."""
    q = g.clone()
    alphas = []
    for s, yv, r in zip(reversed(S), reversed(Y), reversed(rho)):
        a = r * (s * q).sum(1)
        q -= a[:, None] * yv
        alphas.append(a)
    d = q * gamma[:, None]
    for s, yv, r, a in zip(S, Y, rho, reversed(alphas)):
        d += s * (a - r * (yv * d).sum(1))[:, None]
    return d


def _lbfgs(fg, theta: torch.Tensor, pen: torch.Tensor, gscale: torch.Tensor, tol: float, max_iter: int):
    """Batched L-BFGS with Armijo backtracking for f_k(θ) + ½ Σ_j pen_kj θ_kj².

    A problem stops when its largest gradient entry, measured as ``gscale ⊙ ∇`` (the
    gradient in the caller's unscaled coordinates), is below ``tol`` (scikit-learn's lbfgs
    test) or when a step decreases f by less than the dtype can resolve (scipy's ``ftol``
    test; the loss is accumulated in float64, so this only catches true stalls). The
    variables are expected to be preconditioned (curvature ≲ 1), so the first step is 1.
    """
    ftol = 1e-10
    K, m = theta.shape[0], 20
    S, Y, rho = [], [], []
    gamma = torch.ones(K, dtype=theta.dtype, device=theta.device)

    def full(th, idx):
        f, g = fg(th, idx)
        p = pen[idx] * th
        return f + 0.5 * (p * th).sum(1).double(), g + p

    all_idx = torch.arange(K, device=theta.device)
    f, g = full(theta, all_idx)
    active = torch.ones(K, dtype=torch.bool, device=theta.device)
    for _ in range(max_iter):
        active &= (g * gscale).abs().amax(1) > tol
        if not active.any():
            break
        d = -_two_loop(g, S, Y, rho, gamma)
        gd = (g * d).sum(1)
        bad = gd >= 0  # lost descent (tiny curvature pairs): fall back to steepest descent
        d[bad] = -g[bad]
        gd = torch.where(bad, -(g * g).sum(1), gd)
        t = torch.ones(K, dtype=theta.dtype, device=theta.device)
        idx = all_idx[active]
        f_new, g_new = f.clone(), g.clone()
        pending = idx
        for _ in range(40):
            th = theta[pending] + t[pending, None] * d[pending]
            fp, gp = full(th, pending)
            ok = fp <= f[pending] + 1e-4 * t[pending].double() * gd[pending].double()
            f_new[pending], g_new[pending] = fp, gp
            pending_next = pending[~ok]
            if len(pending_next) == 0:
                break
            t[pending_next] *= 0.5
            pending = pending_next
        else:
            # Line search failed: no decrease is representable; stop those problems as they are.
            t[pending] = 0.0
            f_new[pending], g_new[pending] = f[pending], g[pending]
            active[pending] = False
        s = t[:, None] * d
        s[~active] = 0.0
        yv = g_new - g
        sy = (s * yv).sum(1)
        yy = (yv * yv).sum(1)
        good = (sy > 1e-10 * yy.sqrt() * s.norm(dim=1)) & active
        S.append(s)
        Y.append(yv)
        rho.append(torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy)))
        gamma = torch.where(good, sy / torch.where(good, yy, torch.ones_like(yy)), gamma)
        if len(S) > m:
            S.pop(0), Y.pop(0), rho.pop(0)
        theta = theta + s
        stalled = (f - f_new) <= ftol * torch.maximum(torch.maximum(f.abs(), f_new.abs()), torch.ones_like(f))
        f = torch.where(active, f_new, f)
        g = torch.where(active[:, None], g_new, g)
        active &= ~stalled
    return theta


def _rotation(X: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis V [D, r] (float64) of X's row space that nearly diagonalises XᵀX.

    L2-penalised logistic regression is invariant under an orthogonal change of feature
    basis (‖Vᵀw‖ = ‖w‖), so any orthonormal V gives the same optimum; how well V
    diagonalises XᵀX only decides how well the diagonal preconditioner in :func:`fit_l2`
    works. Small Gram matrices get exact eigenvectors, dropping directions outside the
    row space (they carry no data and their optimal weight is exactly zero, so n < D
    problems become n-dimensional). Large ones get the leading eigenvectors by randomized
    subspace iteration, completed to a full basis by a QR factorisation: a full
    eigendecomposition costs more than the whole fit there, and the ill-conditioning of
    feature matrices sits in their leading directions.
    """
    n, D = X.shape
    if min(n, D) <= _EXACT_EIGH:
        if n < D:
            evals, U = torch.linalg.eigh((X @ X.T).double())
            keep = evals > evals[-1].clamp(min=0.0) * 1e-12
            return (X.T.double() @ U[:, keep]) / evals[keep].sqrt()
        evals, V = torch.linalg.eigh((X.T @ X).double())
        keep = evals > evals[-1].clamp(min=0.0) * 1e-12
        return V[:, keep]
    G = (X.T @ X).double()
    gen = torch.Generator(device="cpu").manual_seed(0)
    Q = torch.randn(D, _TOP, generator=gen, dtype=torch.float64).to(G.device)
    for _ in range(3):
        Q = torch.linalg.qr(G @ Q)[0]
    _, U = torch.linalg.eigh(Q.T @ G @ Q)
    Q = Q @ U
    full = torch.linalg.qr(Q, mode="complete")[0]
    return torch.cat([Q, full[:, _TOP:]], 1)


# Exact eigenvectors up to this size; beyond it, this many leading ones.
_EXACT_EIGH = 768
_TOP = 256

# Upper bound on the per-example curvature of the cross-entropy along one logit
# (p(1 - p) ≤ 1/4), used to scale the data term of the preconditioner.
_CURVATURE = 0.25


def fit_l2(
    X: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    rows: list[np.ndarray],
    Cs: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    tol: float | None = None,
    max_iter: int = 1000,
) -> LinearModels:
    """Problem k: L2 logistic regression on rows ``rows[k]`` of X (labels y = class indices), C = Cs[k].

    Minimises (1/n_k) Σ CE + ‖W‖² / (2 C n_k) with an unpenalised intercept, the
    objective of scikit-learn's lbfgs ``LogisticRegression``. By default small problems
    run in float64 to the reference's tolerance and large ones in float32 (gradient
    tolerance 1e-5, the float32 floor), where the speed matters.

    Features are first rotated into the eigenbasis of XᵀX (one eigendecomposition shared
    by all K problems; the objective is rotation invariant) and each problem's weights
    are rescaled by its diagonal curvature bound ¼·diag(Z_kᵀZ_k)/n_k + 1/(C n_k). Raw
    standardised features are very ill-conditioned (a few directions carry most of the
    variance), so this cuts L-BFGS iterations by an order of magnitude.
    """
    dev = torch.device(device)
    K, n_cls = len(rows), len(classes)
    n_out = 1 if n_cls == 2 else n_cls
    dtype, tol = _precision(np.size(X) * K * n_out, dtype, tol, 1e-6, 1e-5)
    X64 = torch.as_tensor(np.asarray(X), dtype=torch.float64, device=dev)
    N = X64.shape[0]
    w = torch.zeros(K, N, dtype=torch.float64, device=dev)
    for k, r in enumerate(rows):
        w[k, torch.as_tensor(r, device=dev)] = 1.0
    n_k = w.sum(1)
    reg = 1.0 / (torch.as_tensor(np.asarray(Cs, dtype=np.float64), device=dev) * n_k)
    with _threads_for(N * X64.shape[1] * K * n_out, dev):
        Xd = X64.to(dtype)
        V = _rotation(Xd)
        Z = Xd @ V.to(dtype)
        R = V.shape[1]
        # Per-problem diagonal preconditioner in the rotated basis (float64).
        p_w = _CURVATURE * (w.to(dtype) @ Z.square()).double() / n_k[:, None] + reg[:, None]  # [K, R]
        # The intercept's curvature bound is ¼ and it is not penalised.
        ones = torch.ones(K, n_out, dtype=torch.float64, device=dev)
        sc = torch.cat([p_w.rsqrt().repeat_interleave(n_out, 1), ones * _CURVATURE**-0.5], 1)
        pen = torch.cat([reg[:, None] * sc[:, : R * n_out].square(), ones * 0.0], 1)
        yt = torch.as_tensor(y, device=dev).expand(K, N)
        loss = _Logistic(_Design(Z), yt, w.to(dtype), n_out)
        sc, pen = sc.to(dtype), pen.to(dtype)

        def scaled(theta, idx):
            f, g = loss(theta * sc[idx], idx)
            return f, g * sc[idx]

        theta = torch.zeros(K, R * n_out + n_out, dtype=dtype, device=dev)
        theta = _lbfgs(scaled, theta, pen, 1.0 / sc, tol, max_iter) * sc
    W, b = loss.split(theta)
    coef = torch.einsum("dr,kro->kod", V, W.double()).cpu().numpy()
    return LinearModels(coef, b.double().cpu().numpy(), classes)

"""L1 binary logistic regression with a penalised intercept (liblinear's objective, as DFR uses),
K problems at once, minimised by batched OWL-QN (orthant-wise L-BFGS); one-vs-rest beyond two
classes, as liblinear does. The precision and threading rules are the L2 engine's."""

from __future__ import annotations

import numpy as np
import torch

from samlens.probe.linear import LinearModels
from samlens.probe.torch_engine import _precision, _threads_for, _two_loop


def fit_l1(
    X: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray,
    rows: list[np.ndarray],
    Cs: np.ndarray,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    tol: float | None = None,
    max_iter: int = 2000,
) -> LinearModels:
    """Problem k: L1 logistic regression on rows ``rows[k]`` of X (labels y = class indices), C = Cs[k].

    Minimises (1/n_k) Σ logloss + (‖w‖₁ + |b|) / (C n_k), liblinear's L1 objective (its
    intercept is a constant feature and is penalised too); one-vs-rest beyond two classes,
    as liblinear does. All problems share X, so each solver iteration is two matrix
    products with one column per problem. A problem stops when the largest entry of its
    minimum-norm subgradient is below ``tol`` (zero exactly at the optimum): by default
    1e-6 in float64 for small problems, 1e-4 in float32 for large ones.
    """
    dev = torch.device(device)
    K, n_cls = len(rows), len(classes)
    targets = [1] if n_cls == 2 else list(range(n_cls))
    n_out = len(targets)
    B = K * n_out
    X = np.asarray(X)
    N, D = X.shape
    dtype, tol = _precision(N * D * B, dtype, tol, 1e-6, 1e-4)
    Xt = torch.as_tensor(X, dtype=dtype, device=dev)
    w = torch.zeros(N, B, dtype=dtype, device=dev)
    yb = torch.zeros(N, B, dtype=dtype, device=dev)
    y_t = torch.as_tensor(np.asarray(y), device=dev)
    lam = torch.empty(B, 1, dtype=dtype, device=dev)
    for k, r in enumerate(rows):
        r_t = torch.as_tensor(np.asarray(r), device=dev)
        for o, c in enumerate(targets):
            b = k * n_out + o
            w[r_t, b] = 1.0 / len(r)
            yb[:, b] = (y_t == c).to(dtype)
            lam[b] = 1.0 / (float(Cs[k]) * len(r))

    theta = torch.zeros(B, D + 1, dtype=dtype, device=dev)
    with _threads_for(N * D * B, dev):
        theta = _owlqn(_l1_loss(Xt, w, yb), theta, lam, tol, max_iter)
    coef = theta[:, :D].reshape(K, n_out, D).double().cpu().numpy()
    return LinearModels(coef, theta[:, D].reshape(K, n_out).double().cpu().numpy(), classes)


# Rows per block of the fused loss/gradient pass: a block of a 2,048-d float32 matrix
# (8 MiB) is still in cache when the gradient product reads it again.
_ROW_BLOCK = 1024


def _l1_loss(X: torch.Tensor, w: torch.Tensor, yb: torch.Tensor):
    """(θ [k, D+1], idx) → (weighted mean logloss [k] in float64, gradient [k, D+1]) of columns idx.

    ``w`` and ``yb`` are [N, B]: problems along columns, so both products are plain matrix
    products with one column per problem. Both products run block by block over the rows,
    so X is read from memory once per evaluation instead of twice.
    """
    N, D = X.shape
    B = w.shape[1]

    def loss(theta: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        W, b = theta[:, :D].T.contiguous(), theta[:, D]
        # Most evaluations are of every problem (idx sorted, so all of them when len(idx) == B):
        # no copy of the weight and label columns then.
        wk, yk = (w, yb) if len(idx) == B else (w[:, idx], yb[:, idx])
        f = torch.zeros(len(idx), dtype=torch.float64, device=X.device)
        grad = torch.zeros(len(idx), D + 1, dtype=X.dtype, device=X.device)
        g, gb = grad[:, :D], grad[:, D]
        for i in range(0, N, _ROW_BLOCK):
            Xi, wi, yi = X[i : i + _ROW_BLOCK], wk[i : i + _ROW_BLOCK], yk[i : i + _ROW_BLOCK]
            z = torch.addmm(b, Xi, W)
            # Summed in float64: near the optimum the line search compares losses whose
            # differences are below float32 resolution.
            f += (wi.double() * (torch.nn.functional.softplus(z) - yi * z).double()).sum(0)
            r = (torch.sigmoid(z) - yi) * wi
            g.addmm_(r.T, Xi)  # rᵀX: a third faster than Xᵀr with X stored by rows
            gb += r.sum(0)
        return f, grad

    return loss


def _pseudo_gradient(theta: torch.Tensor, g: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """The minimum-norm subgradient of f + lam‖θ‖₁ (zero exactly at the optimum)."""
    up, down = g + lam, g - lam
    at_zero = torch.where(up < 0, up, torch.where(down > 0, down, torch.zeros_like(g)))
    return torch.where(theta > 0, up, torch.where(theta < 0, down, at_zero))


def _owlqn(fg, theta: torch.Tensor, lam: torch.Tensor, tol: float, max_iter: int, m: int = 5):
    """Batched OWL-QN (Andrew & Gao 2007) for f_k(θ) + lam_k ‖θ‖₁.

    L-BFGS on the smooth part, with the direction computed from the pseudo-gradient and
    both direction and step kept inside the current orthant, so coordinates become exactly
    zero. Unlike proximal gradient, the curvature pairs absorb the strong correlations of
    feature matrices, which is what made first-order L1 solvers need thousands of passes.
    Each problem has its own history, line search and stopping test. A short memory: on
    DFR-like problems (benchmarks/probe_engine.py) m = 5 took fewer passes than 10, 20 or 40,
    and warm starts from a neighbouring problem's optimum saved none.
    """
    B = theta.shape[0]
    all_idx = torch.arange(B, device=theta.device)
    f, g = fg(theta, all_idx)
    F = f + (lam * theta.abs()).sum(1).double()
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    rho: list[torch.Tensor] = []
    gamma = torch.ones(B, dtype=theta.dtype, device=theta.device)
    active = torch.ones(B, dtype=torch.bool, device=theta.device)
    for _ in range(max_iter):
        pg = _pseudo_gradient(theta, g, lam)
        active &= pg.abs().amax(1) > tol
        if not active.any():
            break
        d = _two_loop(pg, S, Y, rho, gamma)
        # Descend: keep only the components that agree with the pseudo-gradient's direction.
        d = torch.where(d * pg > 0, -d, torch.zeros_like(d))
        orthant = torch.where(theta != 0, torch.sign(theta), -torch.sign(pg))
        t = torch.ones(B, 1, dtype=theta.dtype, device=theta.device)
        th_new, f_new, g_new, F_new = theta.clone(), f.clone(), g.clone(), F.clone()
        pending = all_idx[active]
        for _ in range(40):
            th = theta[pending] + t[pending] * d[pending]
            th = torch.where(torch.sign(th) == orthant[pending], th, torch.zeros_like(th))
            fp, gp = fg(th, pending)
            Fp = fp + (lam[pending] * th.abs()).sum(1).double()
            ok = Fp <= F[pending] + 1e-4 * (pg[pending] * (th - theta[pending])).sum(1).double()
            th_new[pending], f_new[pending], g_new[pending], F_new[pending] = th, fp, gp, Fp
            pending = pending[~ok]
            if len(pending) == 0:
                break
            t[pending] *= 0.5
        else:
            # No decrease is representable: stop those problems where they are.
            th_new[pending], f_new[pending], g_new[pending] = theta[pending], f[pending], g[pending]
            F_new[pending] = F[pending]
            active[pending] = False
        s = torch.where(active[:, None], th_new - theta, torch.zeros_like(theta))
        yv = torch.where(active[:, None], g_new - g, torch.zeros_like(g))
        sy, yy = (s * yv).sum(1), (yv * yv).sum(1)
        good = (sy > 1e-10 * yy.sqrt() * s.norm(dim=1)) & active
        S.append(s)
        Y.append(yv)
        rho.append(torch.where(good, 1.0 / torch.where(good, sy, torch.ones_like(sy)), torch.zeros_like(sy)))
        gamma = torch.where(good, sy / torch.where(good, yy, torch.ones_like(yy)), gamma)
        if len(S) > m:
            S.pop(0), Y.pop(0), rho.pop(0)
        theta, f, g, F = th_new, f_new, g_new, F_new
    return theta

"""Reference updates of the SAM variants, written out from the papers' equations.

Each reference works on a list of float64 tensors θ with a pure loss function, so nothing of the
optimizer under test (its hooks, its perturbation core) is reused.
"""

from __future__ import annotations

import copy
import io

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from .helpers import flat, mlp


def model64(seed: int = 0, bn: bool = False) -> nn.Module:
    return mlp(seed, bn=bn).double()


def batches(n: int, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for i in range(n):
        g = torch.Generator().manual_seed(100 + i)
        x = torch.randn(size, 6, generator=g, dtype=torch.float64)
        out.append((x, torch.randint(0, 3, (size,), generator=g)))
    return out


def grad_at(model: nn.Module, theta: list[torch.Tensor], x, y) -> list[torch.Tensor]:
    names = [n for n, _ in model.named_parameters()]
    th = [t.detach().clone().requires_grad_() for t in theta]
    loss = F.cross_entropy(functional_call(model, dict(zip(names, th)), (x,)), y)
    return list(torch.autograd.grad(loss, th))


def dot(a, b):
    return sum((u * v).sum() for u, v in zip(a, b))


def norm(a):
    return torch.sqrt(dot(a, a))


def axpy(alpha, x, y):
    """α x + y, elementwise over lists."""
    return [alpha * u + v for u, v in zip(x, y)]


def sam_point(theta, direction, rho):
    n = norm(direction)
    return [t + rho * d / n for t, d in zip(theta, direction)]


def reference_run(model, base_ctor, steps, descent, lr_at=None, after_step=None):
    """Drive ``base_ctor`` with ``descent(t, θ, x, y) -> update gradient`` for each batch in ``steps``."""
    ref = copy.deepcopy(model)
    params = list(ref.parameters())
    base = base_ctor(params)
    for t, (x, y) in enumerate(steps):
        if lr_at is not None:
            for group in base.param_groups:
                group["lr"] = lr_at(t)
        theta = [p.detach().clone() for p in params]
        update = descent(t, theta, x, y, ref)
        for p, u in zip(params, update):
            p.grad = u.clone()
        base.step()
        if after_step is not None:
            after_step(t, params, base)
    return flat(ref)


def run(opt, model, steps, lr_at=None):
    for t, (x, y) in enumerate(steps):
        if lr_at is not None:
            for group in opt.param_groups:
                group["lr"] = lr_at(t)
        opt.step(closure(opt, model, x, y))
    return flat(model)


def closure(opt, model, x, y, calls=None):
    def fn():
        if calls is not None:
            calls.append(1)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return fn


def roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def check_resume(make, steps, lr_at=None):
    """n steps straight vs n/2, a save/load(weights_only=True) round trip into fresh objects, n/2 more."""
    model_a, opt_a = make()
    straight = run(opt_a, model_a, steps, lr_at)
    half = len(steps) // 2
    model_b, opt_b = make()
    run(opt_b, model_b, steps[:half], lr_at)
    saved = roundtrip({"model": model_b.state_dict(), "opt": opt_b.state_dict()})
    model_c, opt_c = make()
    model_c.load_state_dict(saved["model"])
    opt_c.load_state_dict(saved["opt"])
    shifted = None if lr_at is None else (lambda t: lr_at(t + half))
    resumed = run(opt_c, model_c, steps[half:], shifted)
    assert torch.equal(straight, resumed)
    return opt_c


BASES = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2),
}

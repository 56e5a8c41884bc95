"""WSAM against its paper's update: the weighted sharpness γ/(1−γ)·(L(θ+ε) − L(θ)), coupled and decoupled."""

import pytest
import torch

from samlens.errors import ConfigError
from samlens.optim import SAM, build_optimizer
from samlens.optim.wsam import WSAM

from .variant_refs import BASES, axpy, batches, check_resume, grad_at, model64, reference_run, run, sam_point

STEPS = batches(6)


@pytest.mark.parametrize("decouple", [True, False], ids=["decoupled", "coupled"])
@pytest.mark.parametrize("base", sorted(BASES))
def test_wsam_matches_the_paper_over_several_steps(base, decouple):
    rho, gamma = 0.08, 0.8
    a = gamma / (1 - gamma)
    model = model64()
    kept = {}

    def descent(t, theta, x, y, ref):
        g = grad_at(ref, theta, x, y)
        gt = grad_at(ref, sam_point(theta, g, rho), x, y)
        sharp = axpy(-1.0, g, gt)  # g̃ − g
        if decouple:
            kept["sharp"] = sharp
            return g  # the base optimizer sees only the loss gradient
        return axpy(a, sharp, g)  # g + a(g̃ − g)

    def after_step(t, params, base_opt):
        if decouple:
            with torch.no_grad():
                for p, s in zip(params, kept["sharp"]):
                    p.sub_(base_opt.param_groups[0]["lr"] * a * s)  # θ ← θ − lr·a·(g̃ − g)

    expected = reference_run(model, BASES[base], STEPS, descent, after_step=after_step)
    opt = WSAM(BASES[base](model.parameters()), rho=rho, gamma=gamma, decouple=decouple, model=model)
    assert (run(opt, model, STEPS) - expected).abs().max() < 1e-10


@pytest.mark.parametrize("base", sorted(BASES))
def test_wsam_coupled_gamma_half_is_sam(base):
    a, b = model64(), model64()
    sam = SAM(BASES[base](a.parameters()), rho=0.05, model=a)
    wsam = WSAM(BASES[base](b.parameters()), rho=0.05, gamma=0.5, decouple=False, model=b)
    assert torch.equal(run(sam, a, STEPS), run(wsam, b, STEPS))


def test_wsam_decoupled_gamma_half_is_sam_for_plain_sgd_only():
    plain = lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=5e-4)  # noqa: E731
    a, b, c, d = model64(), model64(), model64(), model64()
    sam = run(SAM(plain(a.parameters()), rho=0.05, model=a), a, STEPS)
    wsam = run(WSAM(plain(b.parameters()), rho=0.05, gamma=0.5, model=b), b, STEPS)
    assert (sam - wsam).abs().max() < 1e-12
    # With momentum the decoupled sharpness step bypasses the momentum buffer: not SAM.
    sam_m = run(SAM(BASES["sgd_momentum"](c.parameters()), rho=0.05, model=c), c, STEPS)
    wsam_m = run(WSAM(BASES["sgd_momentum"](d.parameters()), rho=0.05, gamma=0.5, model=d), d, STEPS)
    assert (sam_m - wsam_m).abs().max() > 1e-4


def test_wsam_gamma_zero_is_the_base_optimizer():
    a, b = model64(), model64()
    base = BASES["adamw"](a.parameters())
    for x, y in STEPS:
        base.zero_grad()
        torch.nn.functional.cross_entropy(a(x), y).backward()
        base.step()
    wsam = WSAM(BASES["adamw"](b.parameters()), rho=0.05, gamma=0.0, decouple=False, model=b)
    plain = torch.cat([p.detach().reshape(-1) for p in a.parameters()])
    assert (run(wsam, b, STEPS) - plain).abs().max() < 1e-12


@pytest.mark.parametrize("decouple", [True, False])
def test_wsam_resume_is_bit_identical(decouple):
    def make():
        model = model64()
        base = BASES["sgd_momentum"](model.parameters())
        return model, WSAM(base, rho=0.05, decouple=decouple, model=model)

    check_resume(make, batches(6))


@pytest.mark.parametrize("gamma", [1.0, -0.1, float("inf")])
def test_wsam_refuses_gamma_outside_zero_one(gamma):
    with pytest.raises(ConfigError, match="gamma"):
        build_optimizer("wsam", model64(), gamma=gamma)

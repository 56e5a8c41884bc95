"""LookSAM against its paper's update: a SAM step every k steps, g + α(‖g‖/‖g_v‖)g_v in between."""

import pytest
import torch
from torch.nn import functional as F

from samlens.errors import ConfigError
from samlens.optim import SAM, build_optimizer
from samlens.optim.looksam import LookSAM

from .variant_refs import (
    BASES,
    axpy,
    batches,
    check_resume,
    closure,
    dot,
    grad_at,
    model64,
    norm,
    reference_run,
    run,
    sam_point,
)

STEPS = batches(7)


@pytest.mark.parametrize("base", sorted(BASES))
def test_looksam_matches_the_paper_over_several_steps(base):
    rho, k, alpha = 0.08, 3, 0.7
    model = model64()
    kept = {}

    def descent(t, theta, x, y, ref):
        g = grad_at(ref, theta, x, y)
        if t % k == 0:
            gs = grad_at(ref, sam_point(theta, g, rho), x, y)
            kept["gv"] = axpy(-dot(g, gs) / dot(g, g), g, gs)  # g_s − (g·g_s/‖g‖²) g
            return gs
        return axpy(alpha * norm(g) / norm(kept["gv"]), kept["gv"], g)

    expected = reference_run(model, BASES[base], STEPS, descent)
    opt = LookSAM(BASES[base](model.parameters()), rho=rho, k=k, alpha=alpha, model=model)
    assert (run(opt, model, STEPS) - expected).abs().max() < 1e-10
    assert (opt.sam_steps, opt.reuse_steps) == (3, 4)


def test_looksam_k1_is_sam():
    a, b = model64(), model64()
    sam = SAM(BASES["sgd_momentum"](a.parameters()), rho=0.05, model=a)
    look = LookSAM(BASES["sgd_momentum"](b.parameters()), rho=0.05, k=1, model=b)
    assert torch.equal(run(sam, a, STEPS), run(look, b, STEPS))


def test_looksam_reuse_step_runs_one_forward_backward_and_does_not_double_the_gradient():
    model = model64()
    opt = LookSAM(torch.optim.SGD(model.parameters(), lr=1.0), rho=0.05, k=2, alpha=0.0, model=model)
    x, y = STEPS[0]
    calls = []
    opt.step(closure(opt, model, x, y, calls))
    assert len(calls) == 2  # the SAM step
    calls.clear()
    before = [p.detach().clone() for p in model.parameters()]
    g = grad_at(model, before, *STEPS[1])
    opt.step(closure(opt, model, *STEPS[1], calls))
    assert len(calls) == 1  # the reuse step: one pass
    for p, b, gi in zip(model.parameters(), before, g):  # α = 0: θ ← θ − 1·g exactly, not − 2g
        assert torch.allclose(p.detach(), b - gi, atol=1e-12)


def test_looksam_manual_form_equals_closure_form():
    a, b = model64(), model64()
    oa = LookSAM(BASES["sgd_momentum"](a.parameters()), rho=0.05, k=3, model=a)
    ob = LookSAM(BASES["sgd_momentum"](b.parameters()), rho=0.05, k=3, model=b)
    run(oa, a, STEPS)
    for x, y in STEPS:
        ob.zero_grad(set_to_none=True)
        F.cross_entropy(b(x), y).backward()
        if ob.first_step():
            F.cross_entropy(b(x), y).backward()
            ob.second_step(zero_grad=True)
    assert torch.equal(
        torch.cat([p.reshape(-1) for p in a.parameters()]), torch.cat([p.reshape(-1) for p in b.parameters()])
    )


def test_looksam_resume_on_a_reuse_step_is_bit_identical():
    def make():
        model = model64()
        return model, LookSAM(BASES["adamw"](model.parameters()), rho=0.05, k=3, model=model)

    opt = check_resume(make, batches(8))  # resumes at step 4, a reuse step that needs the stored g_v
    assert opt.state_dict()["sam"]["variant"]["gv"]


@pytest.mark.parametrize("options", [{"k": 0}, {"k": 2.5}, {"alpha": -0.1}, {"interval": 2}])
def test_looksam_refuses_bad_options(options):
    with pytest.raises(ConfigError):
        build_optimizer("looksam", model64(), **options)


def test_looksam_refuses_gradient_accumulation():
    with pytest.raises(ConfigError, match="accumulation"):
        build_optimizer("looksam", model64()).accumulate_step(lambda i: None, 2, "global")

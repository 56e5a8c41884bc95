"""GSAM against its paper's update (surrogate-gap ascent, ρ tied to the learning rate)."""

import pytest
import torch

from samlens.errors import ConfigError
from samlens.optim import SAM, build_optimizer
from samlens.optim.gsam import GSAM

from .variant_refs import (
    BASES,
    axpy,
    batches,
    check_resume,
    dot,
    grad_at,
    model64,
    reference_run,
    run,
    sam_point,
)

STEPS = batches(6)


def lr_schedule(lr0):
    return lambda t: lr0 * (1.0 - t / 8)  # linear decay from lr0 (lr_max) towards 0 (lr_min)


@pytest.mark.parametrize("base", sorted(BASES))
def test_gsam_matches_the_paper_over_several_steps(base):
    rho_max, rho_min, alpha = 0.1, 0.02, 0.3
    model = model64()
    lr0 = BASES[base]([torch.zeros(1)]).param_groups[0]["lr"]
    lr_at = lr_schedule(lr0)

    def descent(t, theta, x, y, ref):
        rho_t = rho_min + (rho_max - rho_min) * (lr_at(t) - 0.0) / (lr0 - 0.0)
        g = grad_at(ref, theta, x, y)
        gp = grad_at(ref, sam_point(theta, g, rho_t), x, y)
        g_perp = axpy(-dot(g, gp) / dot(gp, gp), gp, g)  # g − (g·g_p/‖g_p‖²) g_p
        return axpy(-alpha, g_perp, gp)  # g_p − α g_⊥

    expected = reference_run(model, BASES[base], STEPS, descent, lr_at)
    opt = GSAM(BASES[base](model.parameters()), rho=rho_max, rho_min=rho_min, alpha=alpha, model=model)
    got = run(opt, model, STEPS, lr_at)
    assert (got - expected).abs().max() < 1e-10
    assert opt.param_groups[0]["rho"] == pytest.approx(rho_min + (rho_max - rho_min) * lr_at(5) / lr0)


def test_gsam_alpha_zero_and_constant_rho_is_sam():
    a, b = model64(), model64()
    sam = SAM(BASES["sgd_momentum"](a.parameters()), rho=0.05, model=a)
    gsam = GSAM(BASES["sgd_momentum"](b.parameters()), rho=0.05, alpha=0.0, model=b)
    assert torch.equal(run(sam, a, STEPS), run(gsam, b, STEPS))


def test_gsam_resume_is_bit_identical_with_the_radius_schedule_in_state_dict():
    def make():
        model = model64()
        return model, GSAM(BASES["adamw"](model.parameters()), rho=0.1, rho_min=0.01, alpha=0.2, model=model)

    opt = check_resume(make, batches(8), lr_schedule(1e-2))
    group = opt.state_dict()["param_groups"][0]
    assert (group["rho_max"], group["rho_min"], group["lr_max"], group["lr_min"]) == (0.1, 0.01, 1e-2, 0.0)


@pytest.mark.parametrize(
    "options",
    [{"alpha": -1.0}, {"rho": 0.1, "rho_min": 0.2}, {"lr_max": 0.01, "lr_min": 0.02}, {"rho": float("nan")}],
)
def test_gsam_refuses_bad_options_in_one_line(options):
    with pytest.raises(ConfigError) as err:
        build_optimizer("gsam", model64(), **options)
    assert "\n" not in str(err.value)


def test_gsam_refuses_per_micro_batch_accumulation():
    model = model64()
    opt = build_optimizer("gsam", model)
    with pytest.raises(ConfigError, match="per_micro_batch"):
        opt.accumulate_step(lambda i: None, 2, "per_micro_batch")

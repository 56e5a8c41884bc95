"""F-SAM against its paper's update: ε along g_t − σ m_t with m_t = λ m_{t−1} + (1 − λ) g_t."""

import pytest
import torch

from samlens.errors import ConfigError
from samlens.optim import SAM, build_optimizer
from samlens.optim.fsam import FriendlySAM

from .variant_refs import BASES, axpy, batches, check_resume, grad_at, model64, reference_run, run, sam_point

STEPS = batches(6)


@pytest.mark.parametrize("base", sorted(BASES))
def test_fsam_matches_the_paper_over_several_steps(base):
    rho, sigma, lmbda = 0.08, 1.0, 0.6
    model = model64()
    kept = {}

    def descent(t, theta, x, y, ref):
        g = grad_at(ref, theta, x, y)
        m = kept.get("m", [torch.zeros_like(u) for u in g])  # m_0 = 0
        m = kept["m"] = axpy(1 - lmbda, g, [lmbda * u for u in m])
        d = axpy(-sigma, m, g)  # d_t = g_t − σ m_t
        return grad_at(ref, sam_point(theta, d, rho), x, y)

    expected = reference_run(model, BASES[base], STEPS, descent)
    opt = FriendlySAM(BASES[base](model.parameters()), rho=rho, sigma=sigma, lmbda=lmbda, model=model)
    assert (run(opt, model, STEPS) - expected).abs().max() < 1e-10


def test_fsam_ema_is_of_the_gradient_not_of_the_perturbation_direction():
    model = model64()
    opt = FriendlySAM(torch.optim.SGD(model.parameters(), lr=0.0 + 1e-9), rho=0.05, lmbda=0.5, model=model)
    gs = []
    for x, y in STEPS[:2]:
        gs.append(grad_at(model, [p.detach() for p in model.parameters()], x, y))
        run(opt, model, [(x, y)])
    p0 = next(iter(model.parameters()))
    # m_2 = λ(1−λ) g_1 + (1−λ) g_2 (lr ≈ 0, so θ barely moves between the steps)
    expected = 0.25 * gs[0][0] + 0.5 * gs[1][0]
    assert torch.allclose(opt.state[p0]["fsam_m"], expected, atol=1e-8)


def test_fsam_sigma_zero_is_sam():
    a, b = model64(), model64()
    sam = SAM(BASES["adamw"](a.parameters()), rho=0.05, model=a)
    fsam = FriendlySAM(BASES["adamw"](b.parameters()), rho=0.05, sigma=0.0, model=b)
    assert torch.equal(run(sam, a, STEPS), run(fsam, b, STEPS))


def test_fsam_resume_is_bit_identical_with_the_ema_in_state_dict():
    def make():
        model = model64()
        return model, FriendlySAM(BASES["sgd_momentum"](model.parameters()), rho=0.05, model=model)

    opt = check_resume(make, batches(6))
    assert len(opt.state_dict()["sam"]["variant"]["m"]) == 4


@pytest.mark.parametrize("options", [{"lmbda": 1.0}, {"lmbda": -0.5}, {"sigma": -1.0}])
def test_fsam_refuses_bad_options(options):
    with pytest.raises(ConfigError):
        build_optimizer("fsam", model64(), **options)

"""Random-direction SAM and SAM-ON; every variant with GradScaler, the BN policy and accumulation."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from samlens.errors import ConfigError
from samlens.optim import SAM, build_optimizer
from samlens.optim.random_sam import RandomSAM

from .variant_refs import (
    BASES,
    batches,
    check_resume,
    closure,
    grad_at,
    model64,
    reference_run,
    run,
    sam_point,
)

STEPS = batches(6)
VARIANTS = ["gsam", "wsam", "looksam", "fsam", "random_sam", "sam_on"]


@pytest.mark.parametrize("base", sorted(BASES))
def test_random_sam_matches_a_gaussian_direction_of_radius_rho(base):
    rho, seed = 0.1, 7
    model = model64()
    gen = torch.Generator().manual_seed(seed)

    def descent(t, theta, x, y, ref):
        u = [torch.randn(th.shape, generator=gen, dtype=torch.float64) for th in theta]
        return grad_at(ref, sam_point(theta, u, rho), x, y)

    expected = reference_run(model, BASES[base], STEPS, descent)
    opt = RandomSAM(BASES[base](model.parameters()), rho=rho, seed=seed, model=model)
    assert (run(opt, model, STEPS) - expected).abs().max() < 1e-10


def test_random_sam_fed_the_gradient_is_sam():
    class GradientDirection(RandomSAM):
        def _direction(self, p, g):
            return g

    a, b = model64(), model64()
    sam = SAM(BASES["sgd_momentum"](a.parameters()), rho=0.05, model=a)
    ctrl = GradientDirection(BASES["sgd_momentum"](b.parameters()), rho=0.05, model=b)
    assert torch.equal(run(sam, a, STEPS), run(ctrl, b, STEPS))


def test_random_sam_resume_continues_the_generator():
    def make():
        model = model64()
        return model, RandomSAM(BASES["adamw"](model.parameters()), rho=0.05, seed=3, model=model)

    check_resume(make, batches(6))


def test_sam_on_perturbs_only_normalization_parameters():
    model = model64(bn=True)
    opt = build_optimizer("sam_on", model, rho=0.5, lr=0.1, momentum=0.0)
    bn = model[1]
    seen = {}

    def fn():
        opt.zero_grad(set_to_none=True)
        seen.setdefault("thetas", []).append([p.detach().clone() for p in model.parameters()])
        loss = F.cross_entropy(model(STEPS[0][0]), STEPS[0][1])
        loss.backward()
        return loss

    opt.step(fn)
    clean, perturbed = seen["thetas"]
    moved = [not torch.equal(c, q) for c, q in zip(clean, perturbed)]
    names = [n for n, _ in model.named_parameters()]
    assert [n for n, m in zip(names, moved) if m] == ["1.weight", "1.bias"]
    assert bn.weight.grad is not None


def test_sam_on_refuses_a_model_without_normalization_layers():
    with pytest.raises(ConfigError, match="normalization"):
        build_optimizer("sam_on", model64())


@pytest.mark.parametrize("ascent_wd", [False, True])
@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_works_under_a_grad_scaler(name, ascent_wd):
    """A scaled step equals the unscaled step (a power-of-two scale is exact in float64), also when
    the ascent adds weight decay (which must be added to the unscaled gradient)."""
    a, b = model64(bn=True), model64(bn=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    extra = {"ascent_weight_decay": True, "weight_decay": 0.1} if ascent_wd else {}
    oa = build_optimizer(name, a, rho=0.05, lr=0.05, **extra)
    ob = build_optimizer(name, b, rho=0.05, lr=0.05, grad_scaler=scaler, **extra)
    for x, y in STEPS:
        oa.step(closure(oa, a, x, y))

        def scaled(x=x, y=y):
            ob.zero_grad(set_to_none=True)
            loss = F.cross_entropy(b(x), y)
            scaler.scale(loss).backward()
            return loss

        ob.step(scaled)
    fa = torch.cat([p.detach().reshape(-1) for p in a.parameters()])
    fb = torch.cat([p.detach().reshape(-1) for p in b.parameters()])
    assert (fa - fb).abs().max() < 1e-10


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_keeps_only_the_clean_pass_batchnorm_statistics(name):
    model = model64(bn=True)
    opt = build_optimizer(name, model, rho=0.05, lr=0.05)
    x, y = STEPS[0]
    probe = model64(bn=True)
    probe.load_state_dict(model.state_dict())
    probe(x)  # one clean forward
    opt.step(closure(opt, model, x, y))
    assert torch.equal(model[1].running_mean, probe[1].running_mean)
    assert int(model[1].num_batches_tracked) == 1


@pytest.mark.parametrize("name", ["gsam", "wsam", "fsam", "random_sam", "sam_on"])
def test_global_accumulation_equals_one_large_batch_step(name):
    a, b = model64(bn=False), model64(bn=False)
    if name == "sam_on":
        a, b = model64(bn=True), model64(bn=True)
        a.eval(), b.eval()  # batch statistics would differ between micro-batches and the whole batch
    oa = build_optimizer(name, a, rho=0.05, lr=0.05)
    ob = build_optimizer(name, b, rho=0.05, lr=0.05)
    x, y = STEPS[0]
    oa.step(closure(oa, a, x, y))
    xs, ys = x.chunk(2), y.chunk(2)

    def micro(i):
        loss = F.cross_entropy(b(xs[i]), ys[i])  # the micro-batch's mean loss; accumulate_step averages
        loss.backward()
        return loss

    ob.accumulate_step(micro, 2, "global")
    fa = torch.cat([p.detach().reshape(-1) for p in a.parameters()])
    fb = torch.cat([p.detach().reshape(-1) for p in b.parameters()])
    assert (fa - fb).abs().max() < 1e-10


def test_a_state_dict_of_another_variant_is_refused():
    a, b = model64(), model64()
    oa, ob = build_optimizer("gsam", a), build_optimizer("wsam", b)
    run(oa, a, STEPS[:1])
    with pytest.raises(ConfigError, match="gsam"):
        ob.load_state_dict(oa.state_dict())


def test_sam_on_selects_layernorm_and_groupnorm_too():
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GroupNorm(2, 8), nn.Linear(8, 3)).double()
    opt = build_optimizer("sam_on", model)
    assert len(opt._perturb) == 4

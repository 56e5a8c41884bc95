"""SAM's update against closed forms and a textbook two-pass reference."""

import copy

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from samlens.optim import SAM

from .helpers import batch, closure_for, flat, mlp, reference_sam_grads


def _quadratic_perturbed_grad(geometry: str, w0: torch.Tensor, A: torch.Tensor, rho: float, name: str):
    """Return the gradient SAM hands to the base optimizer for L(w) = ½ wᵀAw."""

    class Quad(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_parameter(name, nn.Parameter(w0.clone()))

        def forward(self):
            w = getattr(self, name)
            return 0.5 * w @ A @ w

    model = Quad()
    base = torch.optim.SGD(model.parameters(), lr=1.0)
    opt = SAM(base, rho=rho, geometry=geometry, model=model)
    model().backward()
    assert opt.first_step()
    model().backward()
    grad = getattr(model, name).grad.clone()
    opt.second_step()
    # SGD with lr = 1 moves by exactly the update gradient, from the restored point.
    assert torch.allclose(getattr(model, name).detach(), w0 - grad, atol=1e-6)
    return grad


@pytest.fixture
def quad():
    torch.manual_seed(3)
    M = torch.randn(5, 5, dtype=torch.float64)
    A = (M @ M.T + torch.eye(5, dtype=torch.float64)).float()
    w = torch.randn(5)
    return A, w


def test_sam_gradient_matches_closed_form_on_quadratic(quad):
    A, w = quad
    rho = 0.3
    g = A @ w
    expected = A @ (w + rho * g / g.norm())
    got = _quadratic_perturbed_grad("sam", w, A, rho, "weight")
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("geometry", "name", "eta", "adaptive"),
    [
        ("asam_official", "weight", 0.01, True),
        ("asam_official", "bias", 0.0, False),  # official ASAM leaves non-weight tensors unscaled
        ("asam_common", "bias", 0.0, True),  # the common PyTorch mode scales every tensor, η = 0
    ],
)
def test_asam_gradient_matches_closed_form_on_quadratic(quad, geometry, name, eta, adaptive):
    A, w = quad
    rho = 0.2
    g = A @ w
    T = w.abs() + eta if adaptive else torch.ones_like(w)
    eps = rho * T**2 * g / (T * g).norm()
    expected = A @ (w + eps)
    got = _quadratic_perturbed_grad(geometry, w, A, rho, name)
    assert torch.allclose(got, expected, atol=1e-5)


def _reference_run(model, base_ctor, x, y, rho, steps):
    base = base_ctor(model.parameters())
    for _ in range(steps):
        grads = reference_sam_grads(model, x, y, rho)
        for p, g in zip(model.parameters(), grads):
            p.grad = g
        base.step()
    return flat(model)


@pytest.mark.parametrize(
    "base_ctor",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
        lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2),
    ],
    ids=["sgd_momentum", "adamw"],
)
@pytest.mark.parametrize("nonfinite", ["skip", "ignore"])  # host-scale and device-scale ascent paths
def test_ten_steps_equal_textbook_two_pass_sam(base_ctor, nonfinite):
    x, y = batch()
    model, ref = mlp(), mlp()
    opt = SAM(base_ctor(model.parameters()), rho=0.05, model=model, nonfinite=nonfinite)
    for _ in range(10):
        opt.step(closure_for(model, opt, x, y))
    expected = _reference_run(ref, base_ctor, x, y, 0.05, 10)
    assert (flat(model) - expected).abs().max() < 1e-6


def test_manual_form_equals_closure_form():
    x, y = batch()
    a, b = mlp(), mlp()
    oa = SAM(torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9), rho=0.1, model=a)
    ob = SAM(torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9), rho=0.1, model=b)
    for _ in range(4):
        oa.step(closure_for(a, oa, x, y))
        F.cross_entropy(b(x), y).backward()
        assert ob.first_step()
        F.cross_entropy(b(x), y).backward()
        ob.second_step(zero_grad=True)
    assert torch.equal(flat(a), flat(b))


def test_lsam_perturbs_only_the_head_and_all_parameters_step():
    x, y = batch()
    model = mlp()
    head = model[-1]
    ref = copy.deepcopy(model)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.5, params_to_perturb=head.parameters())
    opt.step(closure_for(model, opt, x, y))
    # Reference: gradient of L at (θ, W + ρ ∇_W L / ‖∇_W L‖) for every parameter.
    loss = F.cross_entropy(ref(x), y)
    gw, gb = torch.autograd.grad(loss, list(ref[-1].parameters()))
    n = torch.sqrt((gw**2).sum() + (gb**2).sum())
    with torch.no_grad():
        ref[-1].weight.add_(0.5 * gw / n)
        ref[-1].bias.add_(0.5 * gb / n)
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    with torch.no_grad():
        ref[-1].weight.sub_(0.5 * gw / n)
        ref[-1].bias.sub_(0.5 * gb / n)
        for p, g in zip(ref.parameters(), grads):
            p.sub_(0.1 * g)
    assert torch.allclose(flat(model), flat(ref), atol=1e-6)
    assert not torch.equal(model[0].weight, mlp()[0].weight)  # the body stepped too


def test_module_predicate_selects_parameter_subset():
    model = mlp()
    opt = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1),
        model=model,
        params_to_perturb=lambda name, module: name == "2",
    )
    assert {id(p) for p in opt._perturb} == {id(p) for p in model[2].parameters()}


def test_ascent_weight_decay_adds_l2_term_to_ascent_only():
    torch.manual_seed(0)
    w0 = torch.randn(4)
    A = torch.eye(4) * 2.0
    wd, rho = 0.1, 0.3
    p = nn.Parameter(w0.clone())
    opt = SAM(torch.optim.SGD([p], lr=1.0, weight_decay=wd), rho=rho, ascent_weight_decay=True)
    (0.5 * p @ A @ p).backward()
    opt.first_step()
    (0.5 * p @ A @ p).backward()
    grad = p.grad.clone()
    opt.second_step()
    g_asc = A @ w0 + wd * w0
    expected_grad = A @ (w0 + rho * g_asc / g_asc.norm())
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    # Descent: SGD adds its own decay of the restored weights (weight decay belongs to the base).
    assert torch.allclose(p.detach(), w0 - (expected_grad + wd * w0), atol=1e-6)


def test_per_group_rho():
    x, y = batch()
    model = mlp()
    groups = [
        {"params": list(model[0].parameters()), "rho": 0.0},
        {"params": list(model[2].parameters()), "rho": 0.2},
    ]
    opt = SAM(torch.optim.SGD(groups, lr=0.1), rho=0.05)
    assert [g["rho"] for g in opt.param_groups] == [0.0, 0.2]
    F.cross_entropy(model(x), y).backward()
    before = [p.detach().clone() for p in model.parameters()]
    opt.first_step()
    after = list(model.parameters())
    assert torch.equal(after[0], before[0]) and torch.equal(after[1], before[1])
    assert not torch.equal(after[2], before[2])
    F.cross_entropy(model(x), y).backward()
    opt.second_step()


@pytest.mark.parametrize("mode", ["per_micro_batch", "global"])
def test_gradient_accumulation_modes(mode):
    x, y = batch(n=24)
    chunks = list(zip(x.chunk(3), y.chunk(3)))
    model, ref = mlp(), mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.1)

    def closure(i):
        xi, yi = chunks[i]
        loss = F.cross_entropy(model(xi), yi)
        loss.backward()
        return loss

    loss = opt.accumulate_step(closure, 3, mode)
    assert torch.allclose(loss, torch.stack([F.cross_entropy(ref(a), b) for a, b in chunks]).mean())
    if mode == "global":  # exact SAM on the union of the micro-batches
        grads = reference_sam_grads(ref, x, y, 0.1)
    else:  # m-SAM: mean of each micro-batch's own SAM gradient
        per = [reference_sam_grads(ref, a, b, 0.1) for a, b in chunks]
        grads = [sum(gs) / 3 for gs in zip(*per)]
    with torch.no_grad():
        for p, g in zip(ref.parameters(), grads):
            p.sub_(0.1 * g)
    assert (flat(model) - flat(ref)).abs().max() < 1e-6


def test_first_step_without_zero_grad_leaves_the_clean_gradient_intact():
    x, y = batch()
    model = mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    F.cross_entropy(model(x), y).backward()
    clean = [p.grad.clone() for p in model.parameters()]
    opt.first_step(zero_grad=False)
    assert all(torch.equal(p.grad, c) for p, c in zip(model.parameters(), clean))


# float64 models: the ascent is computed in the wider of the parameter dtype and fp32 ------------------
@pytest.mark.parametrize("geometry", ["sam", "asam_official", "asam_common"])
@pytest.mark.parametrize("nonfinite", ["skip", "ignore"])  # host-scale and device-scale ascent paths
def test_float64_rho_zero_equals_the_base_optimizer_exactly(geometry, nonfinite):
    x, y = batch()
    x = x.double()
    model, ref = mlp().double(), mlp().double()
    opt = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
        rho=0.0,
        geometry=geometry,
        model=model,
        nonfinite=nonfinite,
    )
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for _ in range(5):
        opt.step(closure_for(model, opt, x, y))
        base.zero_grad()
        F.cross_entropy(ref(x), y).backward()
        base.step()
    assert torch.equal(flat(model), flat(ref))


@pytest.mark.parametrize("scale", [1e20, 1e39])  # squares overflow fp32; 1e39 is beyond fp32 itself
@pytest.mark.parametrize("geometry", ["sam", "asam_common"])
@pytest.mark.parametrize("nonfinite", ["skip", "ignore"])
def test_float64_huge_gradient_still_ascends_and_steps(scale, geometry, nonfinite):
    w0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    c = torch.tensor([3.0, 1.0, -2.0], dtype=torch.float64) * scale
    w = nn.Parameter(w0.clone())
    lr = 0.01 / scale
    opt = SAM(torch.optim.SGD([w], lr=lr), rho=0.1, geometry=geometry, nonfinite=nonfinite)
    (c * w).sum().backward()  # ∇ = c
    assert opt.first_step()
    t2 = torch.ones_like(w0) if geometry == "sam" else w0.abs() ** 2
    t = t2.sqrt()
    eps = 0.1 * t2 * c / ((t * c).norm() + 1e-12)
    torch.testing.assert_close(w.detach(), w0 + eps, rtol=1e-15, atol=0)
    assert opt.skipped_ascents == 0
    (c * w).sum().backward()
    opt.second_step()
    assert opt.skipped_steps == 0
    torch.testing.assert_close(w.detach(), w0 - lr * c, rtol=1e-15, atol=0)


def test_mixed_float64_and_float32_parameters_share_one_float64_norm():
    a0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    b0 = torch.tensor([0.5, -1.0, 3.0], dtype=torch.float32)
    ga = torch.tensor([1e20, -3e20], dtype=torch.float64)
    gb = torch.tensor([2.0, 1.0, -1.0], dtype=torch.float32)
    a, b = nn.Parameter(a0.clone()), nn.Parameter(b0.clone())
    opt = SAM(torch.optim.SGD([a, b], lr=0.1), rho=0.5)
    a.grad, b.grad = ga.clone(), gb.clone()
    assert opt.first_step()
    norm = torch.cat([ga, gb.double()]).norm()
    torch.testing.assert_close(a.detach(), a0 + 0.5 * ga / norm, rtol=1e-15, atol=0)
    assert torch.equal(b.detach(), (b0.double() + 0.5 * gb.double() / norm).float())


# max_grad_norm: the descent gradient is clipped before the base step ------------------------------
def _clipped(grads, max_norm):
    """clip_grad_norm_ by hand: scale by min(1, max_norm / (‖g‖ + 1e-6))."""
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    coef = min(1.0, max_norm / (total.item() + 1e-6))
    return [g * coef for g in grads]


@pytest.mark.parametrize("max_norm", [0.05, 100.0])  # clipping active / inactive
@pytest.mark.parametrize("interval", [1, 2])  # SAM steps and periodic-SAM clean steps
def test_max_grad_norm_clips_the_update_gradient(max_norm, interval):
    x, y = batch()
    model, ref = mlp(), mlp()
    opt = SAM(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        rho=0.05,
        interval=interval,
        max_grad_norm=max_norm,
    )
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for step in range(4):
        opt.step(closure_for(model, opt, x, y))
        rho = 0.05 if step % interval == 0 else 0.0  # a clean step is SAM with rho = 0
        for p, g in zip(ref.parameters(), _clipped(reference_sam_grads(ref, x, y, rho), max_norm)):
            p.grad = g.float()
        base.step()
    assert (flat(model) - flat(ref)).abs().max() < 1e-6
    if max_norm == 0.05:  # the clip was active, so leaving it out would differ
        unclipped = mlp()
        base_u = torch.optim.SGD(unclipped.parameters(), lr=0.1, momentum=0.9)
        plain = SAM(base_u, rho=0.05, interval=interval)
        for _ in range(4):
            plain.step(closure_for(unclipped, plain, x, y))
        assert (flat(unclipped) - flat(ref)).abs().max() > 1e-3


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_max_grad_norm_bad_values_fail_at_construction(bad):
    from samlens.errors import ConfigError
    from samlens.optim import build_optimizer

    model = mlp()
    with pytest.raises(ValueError, match="max_grad_norm must be"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), max_grad_norm=bad)
    with pytest.raises(ConfigError, match="max_grad_norm must be"):
        build_optimizer("sam", model, max_grad_norm=bad)
    assert build_optimizer("sam", model, max_grad_norm=1.0).max_grad_norm == 1.0

import copy

import pytest
import torch
import torch.nn.functional as F

import samlens.optim.per_example  # noqa: F401  (registers "msam")
from samlens.errors import ConfigError
from samlens.models import get_model
from samlens.optim import build_optimizer
from samlens.optim.per_example import MicroBatchSAM, supports_ghost

RHO = 0.2


def _loop_reference(model, x, y, m, rho=RHO):
    """Sequential m-SAM: for each micro-batch, its own clean pass, ascent and perturbed pass.

    Only trainable parameters enter the norm and the perturbation; the result lists their gradients.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in params]
    k = len(x) // m
    for j in range(k):
        xb, yb = x[j * m : (j + 1) * m], y[j * m : (j + 1) * m]
        work = copy.deepcopy(model)
        wp = [p for p in work.parameters() if p.requires_grad]
        g = torch.autograd.grad(F.cross_entropy(work(xb), yb), wp)
        norm = torch.sqrt(sum((gi**2).sum() for gi in g))
        with torch.no_grad():
            for p, gi in zip(wp, g):
                p.add_(rho * gi / (norm + 1e-12))
        h = torch.autograd.grad(F.cross_entropy(work(xb), yb), wp)
        for t, hi in zip(total, h):
            t.add_(hi / k)
    return total


def _step(model, x, y, **options):
    opt = MicroBatchSAM(model, torch.optim.SGD(model.parameters(), lr=0.1), rho=RHO, **options)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    return opt, loss, [p.grad.clone() for p in model.parameters() if p.requires_grad]


def _mlp():
    return get_model("mlp", 4, (3, 2, 2), hidden=(16, 8)).double()


def _max_diff(a, b):
    return max((u - v).abs().max().item() for u, v in zip(a, b))


@pytest.mark.parametrize("mode", ["ghost", "vmap"])
def test_exact_one_sam_equals_per_example_loop(mode):
    model = _mlp()
    x, y = torch.randn(10, 3, 2, 2, dtype=torch.float64), torch.randint(0, 4, (10,))
    expected = _loop_reference(model, x, y, m=1)
    before = copy.deepcopy(model)
    opt, loss, grads = _step(model, x, y, m=1, mode=mode)
    assert opt.mode == mode
    assert _max_diff(grads, expected) <= 1e-6
    # the clean loss is returned and the base optimizer stepped from the unperturbed weights
    torch.testing.assert_close(loss, F.cross_entropy(before(x), y))
    for p0, p1, g in zip(before.parameters(), model.parameters(), expected):
        torch.testing.assert_close(p1, p0 - 0.1 * g, atol=1e-6, rtol=0)
    # and it is not plain SAM: the batch-level ascent gives a different update
    assert _max_diff(grads, _loop_reference(before, x, y, m=10)) > 1e-4


@pytest.mark.parametrize(("mode", "m"), [("ghost", 3), ("ghost", 12), ("vmap", 4)])
def test_vectorised_msam_equals_sequential_micro_batches_mlp(mode, m):
    model = _mlp()
    x, y = torch.randn(12, 3, 2, 2, dtype=torch.float64), torch.randint(0, 4, (12,))
    expected = _loop_reference(model, x, y, m=m)
    _, _, grads = _step(model, x, y, m=m, mode=mode)
    assert _max_diff(grads, expected) <= 1e-6


def test_vmap_fallback_on_a_cnn_with_groupnorm():
    model = get_model("small_cnn", 3, (3, 8, 6), width=2, norm="group").double()
    assert not supports_ghost(model)
    x, y = torch.randn(6, 3, 8, 6, dtype=torch.float64), torch.randint(0, 3, (6,))
    expected = _loop_reference(model, x, y, m=2)
    opt, _, grads = _step(model, x, y, m=2)
    assert opt.mode == "vmap"
    assert _max_diff(grads, expected) <= 1e-6


def test_batchnorm_and_bad_options_are_clear_errors():
    bn = get_model("small_cnn", 3, (3, 8, 8), width=2, norm="batch")
    with pytest.raises(ConfigError, match="BatchNorm"):
        build_optimizer("msam", bn, m=1)
    cnn = get_model("small_cnn", 3, (3, 8, 8), width=2, norm="none")
    with pytest.raises(ConfigError, match="ghost"):
        build_optimizer("msam", cnn, mode="ghost")
    with pytest.raises(ConfigError):
        build_optimizer("msam", _mlp(), m=0)
    model = _mlp()
    opt = build_optimizer("msam", model, m=4, lr=0.1)
    x, y = torch.randn(6, 3, 2, 2, dtype=torch.float64), torch.randint(0, 4, (6,))

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    with pytest.raises(ConfigError, match="multiple"):
        opt.step(closure)
    # the interception never outlives a step, even a failed one
    assert all("forward" not in vars(mod) for mod in model.modules())


def _frozen_mlp(freeze):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    model = model.double()
    for name in freeze:
        model.get_parameter(name).requires_grad_(False)
    return model


@pytest.mark.parametrize("freeze", [("2.weight", "2.bias"), ("2.weight",), ("2.bias", "4.bias")])
@pytest.mark.parametrize(("mode", "m"), [("ghost", 1), ("ghost", 2), ("vmap", 1)])
def test_frozen_parameters_are_neither_in_the_norm_nor_perturbed(freeze, mode, m):
    model = _frozen_mlp(freeze)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(8, 6, dtype=torch.float64, generator=g), torch.randint(0, 3, (8,), generator=g)
    expected = _loop_reference(model, x, y, m=m, rho=1.0)
    opt = MicroBatchSAM(model, torch.optim.SGD(model.parameters(), lr=0.1), m=m, rho=1.0, mode=mode)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert _max_diff(grads, expected) <= 1e-9
    for n, p in model.named_parameters():
        if n in frozen:
            assert p.grad is None and torch.equal(p.detach(), frozen[n])

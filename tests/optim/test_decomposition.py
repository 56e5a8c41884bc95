import copy

import pytest
import torch
import torch.nn.functional as F

import samlens.optim.decomposition  # noqa: F401  (registers "iw", "lr", "lsam_decomposed")
from samlens.errors import ConfigError
from samlens.models import get_model
from samlens.optim import build_optimizer
from samlens.optim.decomposition import Decomposition

RHO = 0.3


def _ce(z, y):
    return F.cross_entropy(z, y)


def _logistic(z, y):
    return F.binary_cross_entropy_with_logits(z.squeeze(1), y.double())


def _setup(loss_name):
    torch.manual_seed(1)
    classes = 3 if loss_name == "ce" else 1
    model = get_model("mlp", classes, (6,), hidden=(8, 5), activation="tanh").double()
    x = torch.randn(12, 6, dtype=torch.float64)
    y = torch.randint(0, 3 if loss_name == "ce" else 2, (12,))
    return model, x, y, (_ce if loss_name == "ce" else _logistic)


def _feature_params(model):
    return [p for n, p in model.named_parameters() if not n.startswith("head.")]


def _run(variant, model, x, y, loss_fn, base="sgd", rho_mode="absolute"):
    """One step of the variant; returns the update gradient left in .grad and the stepped model."""
    base_opt = (
        torch.optim.SGD(model.parameters(), lr=0.1)
        if base == "sgd"
        else torch.optim.Adam(model.parameters(), lr=0.01)
    )
    opt = Decomposition(model, base_opt, variant=variant, rho=RHO, rho_mode=rho_mode)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    return loss, [p.grad.clone() for p in model.parameters()]


def _reference(model, x, y, loss_fn, variant, rho_mode="absolute"):
    """Spec §3 written out: feature grads J^T W*^T r*, head grads r*^T Φ, from explicit residuals."""
    m = copy.deepcopy(model)
    w, b = m.head.weight, m.head.bias
    phi = m.features(x)
    z = phi @ w.T + b
    loss = loss_fn(z, y)
    gw, gb = torch.autograd.grad(loss, [w, b], retain_graph=True)
    radius = RHO * torch.sqrt(w.pow(2).sum() + b.pow(2).sum()) if rho_mode == "relative" else RHO
    scale = radius / (torch.sqrt(gw.pow(2).sum() + gb.pow(2).sum()) + 1e-12)
    w_t, b_t = (w + scale * gw).detach(), (b + scale * gb).detach()

    def residual(weight, bias):
        zz = (phi.detach() @ weight.T + bias).requires_grad_(True)
        (r,) = torch.autograd.grad(loss_fn(zz, y), zz)
        return r

    r, r_t = residual(w.detach(), b.detach()), residual(w_t, b_t)
    r_star, w_star = {
        "sgd": (r, w.detach()),
        "iw": (r_t, w.detach()),
        "lr": (r, w_t),
        "lsam": (r_t, w_t),
    }[variant]
    feat = torch.autograd.grad(phi, _feature_params(m), grad_outputs=r_star @ w_star)
    head = [r_star.T @ phi.detach(), r_star.sum(0)]
    return list(feat) + head, (w_t, b_t)


def _autograd_at(model, x, y, loss_fn, w=None, b=None):
    m = copy.deepcopy(model)
    if w is not None:
        with torch.no_grad():
            m.head.weight.copy_(w)
            m.head.bias.copy_(b)
    loss = loss_fn(m(x), y)
    return list(torch.autograd.grad(loss, list(m.parameters())))


def _close(a, b, tol=1e-6):
    return all(torch.allclose(u, v, atol=tol, rtol=0) for u, v in zip(a, b))


@pytest.mark.parametrize("loss_name", ["ce", "logistic"])
def test_lsam_equals_autograd_at_phantom_head(loss_name):
    model, x, y, loss_fn = _setup(loss_name)
    ref, (w_t, b_t) = _reference(model, x, y, loss_fn, "lsam")
    auto = _autograd_at(model, x, y, loss_fn, w_t, b_t)
    assert _close(ref, auto, 1e-10)  # the table's LSAM row is autograd at (θ, W̃)
    before = copy.deepcopy(model)
    _, grads = _run("lsam", model, x, y, loss_fn)
    assert _close(grads, auto)
    # the head is restored exactly before the base step: θ_new = θ - lr * g
    for p0, p1, g in zip(before.parameters(), model.parameters(), grads):
        torch.testing.assert_close(p1, p0 - 0.1 * g, atol=1e-12, rtol=0)


def test_lsam_matches_sam_on_the_head_subset():
    from samlens.optim import sam as sam_mod

    model, x, y, loss_fn = _setup("ce")
    other = copy.deepcopy(model)
    _, grads = _run("lsam", model, x, y, loss_fn)
    opt = sam_mod.SAM(
        torch.optim.SGD(other.parameters(), lr=0.1), rho=RHO, params_to_perturb=other.head.parameters()
    )

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(other(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    assert _close(grads, [p.grad for p in other.parameters()])
    assert _close(list(model.parameters()), list(other.parameters()))


@pytest.mark.parametrize("loss_name", ["ce", "logistic"])
def test_sgd_variant_is_plain_backprop(loss_name):
    model, x, y, loss_fn = _setup(loss_name)
    auto = _autograd_at(model, x, y, loss_fn)
    ref, _ = _reference(model, x, y, loss_fn, "sgd")
    assert _close(ref, auto, 1e-10)
    loss, grads = _run("sgd", model, x, y, loss_fn)
    assert _close(grads, auto)


@pytest.mark.parametrize("loss_name", ["ce", "logistic"])
@pytest.mark.parametrize("variant", ["iw", "lr"])
def test_single_effects_follow_the_table(loss_name, variant):
    model, x, y, loss_fn = _setup(loss_name)
    expected, _ = _reference(model, x, y, loss_fn, variant)
    sgd, _ = _reference(model, x, y, loss_fn, "sgd")
    lsam, _ = _reference(model, x, y, loss_fn, "lsam")
    _, grads = _run(variant, model, copy.deepcopy(x), y, loss_fn)
    assert _close(grads, expected)
    n_feat = len(_feature_params(model))
    # the feature gradients differ from both SGD and LSAM (each variant changes one factor)
    for other in (sgd, lsam):
        assert not _close(grads[:n_feat], other[:n_feat], 1e-4)
    # head gradient: IW uses the phantom residual (= LSAM's head grad), LR the real one (= SGD's)
    same_head = lsam if variant == "iw" else sgd
    diff_head = sgd if variant == "iw" else lsam
    assert _close(grads[n_feat:], same_head[n_feat:])
    assert not _close(grads[n_feat:], diff_head[n_feat:], 1e-4)


def test_relative_rho_and_adam_base():
    model, x, y, loss_fn = _setup("ce")
    expected, _ = _reference(model, x, y, loss_fn, "iw", rho_mode="relative")
    reference = copy.deepcopy(model)
    adam = torch.optim.Adam(reference.parameters(), lr=0.01)
    for p, g in zip(reference.parameters(), expected):
        p.grad = g.clone()
    adam.step()
    _, grads = _run("iw", model, x, y, loss_fn, base="adam", rho_mode="relative")
    assert _close(grads, expected)
    assert _close(list(model.parameters()), list(reference.parameters()), 1e-10)


def test_registry_and_batchnorm_keeps_clean_statistics():
    model = get_model("small_cnn", 2, (3, 8, 8), width=2, norm="batch")
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 2, (6,))
    clean = copy.deepcopy(model)
    clean(x)  # one clean forward in train mode
    for name in ("iw", "lr", "lsam_decomposed"):
        m = copy.deepcopy(model)
        opt = build_optimizer(name, m, rho=0.1, lr=0.01)

        def closure(m=m, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            return loss

        opt.step(closure)
        for (n, b1), (_, b2) in zip(m.named_buffers(), clean.named_buffers()):
            assert torch.equal(b1, b2), (name, n)
        assert "forward" not in vars(m.head)  # the interception is removed


def test_bad_options():
    model = get_model("mlp", 2, (4,), hidden=(3,))
    with pytest.raises(ConfigError):
        build_optimizer("iw", model, rho=-1.0)
    with pytest.raises(ConfigError):
        build_optimizer("lr", model, rho_mode="weird")

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


# ---------------------------------------------------------------------------------------------
# Single pass: one backbone forward + backward per step, equal to the two-pass path.

STEPS = 10


def _parity_model(kind):
    torch.manual_seed(3)
    if kind == "cnn_bn":
        return get_model("small_cnn", 3, (3, 8, 8), width=4, norm="batch"), (3, 8, 8)
    return get_model("mlp", 3, (6,), hidden=(16, 8)), (6,)


def _train(opt, model, batches):
    losses = []
    for x, y in batches:

        def closure(x=x, y=y):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        losses.append(opt.step(closure).detach())
    return torch.stack(losses)


def _state(model):
    return torch.cat([t.detach().double().reshape(-1) for t in model.state_dict().values()])


@pytest.mark.parametrize("kind", ["mlp", "cnn_bn"])
@pytest.mark.parametrize("variant", ["lsam", "iw", "lr"])
def test_single_pass_equals_two_pass_over_ten_steps(variant, kind):
    model, shape = _parity_model(kind)
    g = torch.Generator().manual_seed(4)
    batches = [
        (torch.randn(16, *shape, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(STEPS)
    ]
    runs = {}
    for single in (True, False):
        m = copy.deepcopy(model)
        opt = build_optimizer(
            variant, m, rho=0.2, lr=0.05, momentum=0.9, weight_decay=5e-4, single_pass=single
        )
        runs[single] = (m, _train(opt, m, batches))
    if variant == "lsam":  # the two-pass path of "lsam" is SAM on the head subset (samlens.optim.SAM)
        from samlens.optim import SAM

        assert isinstance(build_optimizer("lsam", copy.deepcopy(model), single_pass=False), SAM)
    (m1, l1), (m2, l2) = runs[True], runs[False]
    assert (l1 - l2).abs().max() <= 1e-6  # same clean losses returned
    # parameters and the BatchNorm running statistics (updated once per step in both paths)
    assert (_state(m1) - _state(m2)).abs().max() <= 1e-6
    assert (_state(m1) - _state(model)).abs().max() > 1e-3  # it trained


def _count_backbone_passes(model):
    counts = {"forward": 0, "backward": 0}
    first = model.body[1] if isinstance(model.body[0], torch.nn.Flatten) else model.body[0]

    def fwd(module, inputs, output):
        counts["forward"] += 1
        output.register_hook(lambda grad: counts.__setitem__("backward", counts["backward"] + 1))

    first.register_forward_hook(fwd)
    return counts


@pytest.mark.parametrize("variant", ["lsam", "iw", "lr"])
def test_single_pass_runs_the_backbone_forward_and_backward_once(variant):
    model, shape = _parity_model("cnn_bn")
    x, y = torch.randn(8, *shape), torch.randint(0, 3, (8,))
    for single, passes in ((True, 1), (False, 2)):
        m = copy.deepcopy(model)
        counts = _count_backbone_passes(m)
        opt = build_optimizer(variant, m, rho=0.2, single_pass=single)
        _train(opt, m, [(x, y)] * 3)
        assert counts == {"forward": 3 * passes, "backward": 3 * passes}, (single, counts)
        assert not {"forward", "features"} & set(vars(m)) and "forward" not in vars(m.head)


class _NoFeaturesCall(torch.nn.Module):
    """A model whose forward does not go through ``features``: the single pass cannot reuse it."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.parametrize("variant", ["lsam", "iw", "lr"])
def test_single_pass_falls_back_to_two_passes_when_the_features_cannot_be_reused(variant):
    torch.manual_seed(5)
    g = torch.Generator().manual_seed(6)
    batches = [(torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    for model in (_NoFeaturesCall(), _parity_model("mlp")[0]):
        a, b = copy.deepcopy(model), copy.deepcopy(model)
        oa = Decomposition(a, torch.optim.SGD(a.parameters(), lr=0.1, momentum=0.9), variant, 0.2)
        ob = Decomposition(
            b, torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9), variant, 0.2, single_pass=False
        )
        for x, y in batches:
            for m, opt in ((a, oa), (b, ob)):

                def closure(m=m, opt=opt, x=x, y=y):  # two evaluations of the model in one loss
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(m(x), y) + 0.5 * F.cross_entropy(m(x[:8]), y[:8])
                    loss.backward()
                    return loss

                opt.step(closure)
        assert (_state(a) - _state(b)).abs().max() <= 1e-6


def test_ascent_context_wraps_only_the_clean_call():
    import contextlib

    model, shape = _parity_model("mlp")
    x, y = torch.randn(8, *shape), torch.randint(0, 3, (8,))
    for variant in ("lsam", "iw", "lr", "sgd"):
        for single in (True, False):
            m = copy.deepcopy(model)
            opt = Decomposition(m, torch.optim.SGD(m.parameters(), lr=0.1), variant, 0.2, single_pass=single)
            inside, calls = [False], []

            @contextlib.contextmanager
            def context(inside=inside):
                inside[0] = True
                yield
                inside[0] = False

            def closure(m=m, opt=opt, inside=inside, calls=calls):
                calls.append(inside[0])
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(m(x), y)
                loss.backward()
                return loss

            opt.step(closure, ascent_context=context())
            # the clean (ascent) call under the context, the update's call outside it
            assert calls == ([False] if variant == "sgd" else [True, False]), (variant, single)


def test_registry_lsam_options():
    from samlens.optim import SAM

    model = get_model("mlp", 2, (4,), hidden=(3,))
    opt = build_optimizer("lsam", model, rho=0.1)
    assert isinstance(opt, Decomposition) and opt.single_pass and opt.variant == "lsam"
    assert isinstance(build_optimizer("lsam", model, single_pass=False, interval=2), SAM)
    assert (
        build_optimizer("iw", model).single_pass
        and not build_optimizer("lr", model, single_pass=False).single_pass
    )
    with pytest.raises(ConfigError, match="single_pass"):  # SAM-only options need the SAM path
        build_optimizer("lsam", model, interval=2)
    with pytest.raises(ConfigError, match="rho_mode"):
        build_optimizer("lsam", model, single_pass=False, rho_mode="relative")


def test_loads_a_two_pass_lsam_checkpoint():
    """Runs checkpointed when "lsam" was always the two-pass SAM keep resuming."""
    model, shape = _parity_model("mlp")
    x, y = torch.randn(8, *shape), torch.randint(0, 3, (8,))
    old = build_optimizer("lsam", model, single_pass=False)
    _train(old, model, [(x, y)])
    new = build_optimizer("lsam", model)
    new.load_state_dict(old.state_dict())
    assert torch.equal(
        new.state_dict()["state"][0]["momentum_buffer"],
        old.state_dict()["state"][0]["momentum_buffer"],
    )


# ---------------------------------------------------------------------------------------------
# Precision of the phantom head


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("variant", ["lsam", "iw", "lr"])
def test_float64_rho_zero_equals_the_base_optimizer(variant, single):
    model, x, y, loss_fn = _setup("ce")
    with torch.no_grad():  # values float32 cannot hold
        model.head.weight.add_(1e-12)
        model.head.bias.fill_(1.0 + 2.0**-40)
    ref = copy.deepcopy(model)
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = Decomposition(model, base, variant, rho=0.0, single_pass=single)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        head = [t.detach().clone() for t in model.head.parameters()]
        _train(opt, model, [(x, y)])
        _train(ref_opt, ref, [(x, y)])
        assert all(torch.equal(u, v) for u, v in zip(opt.last_phantom, head))  # W̃ = W exactly
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-15, rtol=0)


def test_phantom_head_keeps_float64_precision():
    model, x, y, loss_fn = _setup("ce")
    with torch.no_grad():
        model.head.bias.fill_(1.0 + 2.0**-40)
    opt = Decomposition(model, torch.optim.SGD(model.parameters(), lr=0.1), "lsam", rho=1e-9)
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    w_t, b_t = opt.phantom_head()
    assert w_t.dtype == b_t.dtype == torch.float64
    gw, gb = model.head.weight.grad, model.head.bias.grad
    scale = 1e-9 / torch.sqrt(gw.pow(2).sum() + gb.pow(2).sum())
    torch.testing.assert_close(b_t, model.head.bias.detach() + scale * gb, atol=1e-15, rtol=0)
    torch.testing.assert_close(w_t, model.head.weight.detach() + scale * gw, atol=1e-15, rtol=0)


@pytest.mark.slow
def test_ddp_single_pass_matches_single_process_per_device_reference(tmp_path):
    """2 gloo processes, ascent under no_sync (as the training loop passes it): each device perturbs
    the head with its own half of the batch; the update is the mean of the two halves' gradients."""
    import torch.multiprocessing as mp

    from . import _ddp_decomposition_worker as worker

    variants = ["lsam", "iw", "lr"]
    prefix = str(tmp_path / "rank")
    mp.spawn(worker.run, args=(2, str(tmp_path / "init"), variants, prefix), nprocs=2, join=True)
    r0, r1 = (torch.load(f"{prefix}{r}.pt", weights_only=True) for r in range(2))
    for variant in variants:
        model, x, y = worker.model_and_batch()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(worker.STEPS):
            grads = []
            for xs, ys in zip(x.chunk(2), y.chunk(2)):  # each half's update gradient, two-pass path
                m = copy.deepcopy(model)
                probe = Decomposition(
                    m, torch.optim.SGD(m.parameters(), lr=0.0), variant, 0.2, single_pass=False
                )
                _train(probe, m, [(xs, ys)])
                grads.append([p.grad for p in m.parameters()])
            for p, g0, g1 in zip(model.parameters(), *grads):
                p.grad = (g0 + g1) / 2
            opt.step()
        expected = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        assert torch.equal(r0[variant], r1[variant])  # identical across ranks
        assert (r0[variant] - expected).abs().max() <= 1e-6, variant


def test_single_pass_under_bf16_autocast():
    """The split head computes in autocast's dtype like nn.Linear (its backward runs outside autocast)."""
    model, shape = _parity_model("cnn_bn")
    x, y = torch.randn(16, *shape), torch.randint(0, 3, (16,))
    for variant in ("lsam", "iw", "lr"):
        out = {}
        for single in (True, False):
            m = copy.deepcopy(model)
            opt = build_optimizer(variant, m, rho=0.2, single_pass=single)

            def closure(m=m, opt=opt):
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = m(x)
                loss = F.cross_entropy(logits.float(), y)
                loss.backward()
                return loss

            for _ in range(3):
                opt.step(closure)
            assert all(p.grad.dtype == torch.float32 for p in m.parameters())
            out[single] = _state(m)
        # IW/LR: the same split head in both paths; LSAM's two-pass path is nn.Linear at W̃, so the
        # two differ by bf16 rounding of the logits (a bf16 run differs from an fp32 one by 2e-2).
        tol = 1e-2 if variant == "lsam" else 1e-6
        assert (out[True] - out[False]).abs().max() <= tol, variant


class _FakeDDP(torch.nn.Module):
    """Stands in for DistributedDataParallel: records that the ascent ran under no_sync()."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module
        self.no_sync_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def no_sync(self):
        import contextlib

        self.no_sync_calls += 1
        return contextlib.nullcontext()


@pytest.mark.parametrize("name", ["lsam", "iw", "lr"])
def test_ddp_sam_step_takes_the_decomposition_optimizers(name):
    from samlens.optim import ddp_sam_step

    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    results = []
    for use_helper in (False, True):
        torch.manual_seed(1)
        model = get_model("mlp", 2, (4,), hidden=(6,))
        wrapped = _FakeDDP(model)
        opt = build_optimizer(name, model, rho=0.2, lr=0.1)

        def closure(wrapped=wrapped, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(wrapped(x), y)
            loss.backward()
            return loss

        for _ in range(3):
            if use_helper:
                ddp_sam_step(opt, wrapped, closure, per_device_batch=16)
            else:
                opt.step(closure)
        if use_helper:
            assert wrapped.no_sync_calls == 3 and opt.examples_per_perturbation == 16
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ddp_sam_step_refuses_a_global_ascent_for_the_single_pass():
    from samlens.optim import ddp_sam_step

    model = get_model("mlp", 2, (4,), hidden=(6,))
    opt = build_optimizer("lsam", model, rho=0.2)
    with pytest.raises(ValueError, match="per_device"):
        ddp_sam_step(opt, _FakeDDP(model), lambda: torch.zeros(()), ascent="global")

"""One regression test per failure seen in other SAM implementations (spec: sam-correctness.md)."""

import copy
import io

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from samlens.optim import SAM, build_optimizer

from .helpers import batch, closure_for, flat, mlp


def _sgd_sam(model, **kw):
    return SAM(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
        rho=0.05,
        model=model,
        **kw,
    )


# 1 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("base", ["sgd", "adamw"])
def test_resume_from_state_dict_is_bit_identical(base):
    x, y = batch()
    model = mlp()
    opt = build_optimizer("sam", model, base=base, lr=0.05, rho=0.05)
    for _ in range(3):
        opt.step(closure_for(model, opt, x, y))
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    for _ in range(3):
        opt.step(closure_for(model, opt, x, y))

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = mlp(seed=99)
    resumed.load_state_dict(saved["model"])
    opt2 = build_optimizer("sam", resumed, base=base, lr=0.05, rho=0.05)
    opt2.load_state_dict(saved["opt"])
    assert opt2.steps == 3
    for _ in range(3):
        opt2.step(closure_for(resumed, opt2, x, y))
    assert torch.equal(flat(model), flat(resumed))
    assert opt2.param_groups is opt2.base_optimizer.param_groups  # still shared after loading


def test_state_dict_has_torch_layout_with_base_state_and_sam_counters():
    x, y = batch()
    model = mlp()
    opt = _sgd_sam(model)
    opt.step(closure_for(model, opt, x, y))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups", "sam"}
    base = opt.base_optimizer.state_dict()
    assert sd["param_groups"] == base["param_groups"] and sd["param_groups"][0]["rho"] == 0.05
    assert len(sd["state"]) == len(list(model.parameters()))
    for i, s in sd["state"].items():
        assert torch.equal(s["momentum_buffer"], base["state"][i]["momentum_buffer"])
    assert sd["sam"]["step_count"] == 1 and sd["sam"]["sam_steps"] == 1
    with pytest.raises(ValueError, match="not an optimizer state_dict"):
        opt.load_state_dict({"momentum": 0.9})


def _trained(steps=3, **kw):
    x, y = batch()
    model = mlp()
    opt = build_optimizer("sam", model, base="adamw", lr=0.05, rho=0.05, **kw)
    for _ in range(steps):
        opt.step(closure_for(model, opt, x, y))
    return model, opt


def _continue(model, opt, steps=3):
    x, y = batch()
    for _ in range(steps):
        opt.step(closure_for(model, opt, x, y))
    return flat(model)


def _fresh_copy(model, **kw):
    resumed = mlp(seed=99)
    resumed.load_state_dict(model.state_dict())
    return resumed, build_optimizer("sam", resumed, base="adamw", lr=0.05, rho=0.05, **kw)


def test_checkpoint_in_the_old_base_sam_layout_still_loads():
    model, opt = _trained(interval=2)
    old_layout = {"base": opt.base_optimizer.state_dict(), "sam": opt.state_dict()["sam"]}
    resumed, opt2 = _fresh_copy(model, interval=2)
    opt2.load_state_dict(copy.deepcopy(old_layout))
    assert opt2.steps == 3 and opt2.sam_steps == 2
    assert torch.equal(_continue(model, opt), _continue(resumed, opt2))


def test_state_dict_saves_and_loads_with_weights_only():
    model, opt = _trained()
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    resumed, opt2 = _fresh_copy(model)
    opt2.load_state_dict(loaded)
    assert opt2.steps == 3
    assert torch.equal(_continue(model, opt), _continue(resumed, opt2))


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_optimizer_pickles_and_deep_copies(how):
    import pickle

    model, opt = _trained()
    clone = pickle.loads(pickle.dumps(opt)) if how == "pickle" else copy.deepcopy(opt)
    twin = clone.model  # copied together with the parameters it holds
    assert [id(p) for p in twin.parameters()] == [id(p) for g in clone.param_groups for p in g["params"]]
    assert clone.param_groups is clone.base_optimizer.param_groups
    assert clone.steps == 3
    assert torch.equal(_continue(model, opt), _continue(twin, clone))


def test_torch_distributed_checkpoint_get_and_set_optimizer_state_dict():
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    model, opt = _trained()
    osd = copy.deepcopy(get_optimizer_state_dict(model, opt))  # as saved: no tensor shared with opt
    assert set(osd["state"]) == {n for n, _ in model.named_parameters()}
    assert osd["param_groups"][0]["rho"] == 0.05
    resumed, opt2 = _fresh_copy(model)
    set_optimizer_state_dict(resumed, opt2, osd)  # on a fresh optimizer: no state yet
    assert torch.equal(flat(resumed), flat(model))  # state initialisation moved nothing
    assert torch.equal(_continue(model, opt), _continue(resumed, opt2))


# 2 ------------------------------------------------------------------------------------------------
def test_closure_step_runs_both_passes_and_returns_clean_loss():
    x, y = batch()
    model = mlp()
    clean = F.cross_entropy(model(x), y).detach()
    opt = _sgd_sam(model)
    calls: list = []
    loss = opt.step(closure_for(model, opt, x, y, calls))
    assert len(calls) == 2
    assert torch.equal(loss.detach(), clean)


def test_step_without_closure_is_a_clear_error():
    model = mlp()
    opt = _sgd_sam(model)
    with pytest.raises(ValueError, match="needs a closure"):
        opt.step()
    # Only torch.distributed.checkpoint's state initialisation (every lr 0, every gradient zero) passes.
    x, y = batch()
    opt.param_groups[0]["lr"] = 0.0
    with pytest.raises(ValueError, match="needs a closure"):
        opt.step()  # no gradients at all
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(ValueError, match="needs a closure"):
        opt.step()  # a real gradient: this is a forgotten closure, not an initialisation


def test_plain_optimizer_state_dict_keeps_counters_and_warns_under_periodic_sam():
    model, opt = _trained(interval=2)
    plain = opt.base_optimizer.state_dict()
    _, opt2 = _fresh_copy(model)
    opt2.load_state_dict(plain)  # interval 1: nothing to lose, no warning
    _, opt3 = _fresh_copy(model, interval=2)
    with pytest.warns(UserWarning, match="no 'sam' entry"):
        opt3.load_state_dict(plain)
    assert opt3.steps == 0


# 4 ------------------------------------------------------------------------------------------------
def test_periodic_sam_single_pass_on_skip_steps_and_no_doubled_gradients():
    x, y = batch()
    model, ref = mlp(), mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, interval=3, model=model)
    calls: list = []
    for step in range(6):
        n_before = len(calls)
        is_sam = opt.is_sam_step
        assert is_sam == (step % 3 == 0)
        before = copy.deepcopy(model)
        opt.step(closure_for(model, opt, x, y, calls))
        assert len(calls) - n_before == (2 if is_sam else 1)
        if not is_sam:  # exactly one plain SGD step with the clean gradient
            grads = torch.autograd.grad(F.cross_entropy(before(x), y), list(before.parameters()))
            expected = torch.cat([(p - 0.1 * g).reshape(-1) for p, g in zip(before.parameters(), grads)])
            assert torch.allclose(flat(model), expected.detach(), atol=1e-7)
    assert opt.steps == 6 and opt.sam_steps == 2
    del ref


def test_periodic_manual_form_reports_skip_steps():
    x, y = batch()
    model = mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, interval=2)
    F.cross_entropy(model(x), y).backward()
    assert opt.first_step() is True
    F.cross_entropy(model(x), y).backward()
    opt.second_step(zero_grad=True)
    F.cross_entropy(model(x), y).backward()
    assert opt.first_step() is False  # already stepped with the clean gradient
    assert opt.steps == 2


# 5 ------------------------------------------------------------------------------------------------
class _Stateless(torch.optim.Optimizer):
    """A minimal optimizer that keeps no per-parameter state and no step counter."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.sub_(g["lr"] * p.grad)


@pytest.mark.parametrize(
    "ctor", [lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: _Stateless(ps, 0.1)]
)
def test_works_with_optimizers_without_step_counter(ctor):
    x, y = batch()
    model = mlp()
    opt = SAM(ctor(model.parameters()), rho=0.05)
    for _ in range(3):
        opt.step(closure_for(model, opt, x, y))
    assert opt.steps == 3
    opt.load_state_dict(opt.state_dict())


# 8 ------------------------------------------------------------------------------------------------
def _bn_after_step(policy):
    x, y = batch()
    model = mlp(bn=True)
    bn = model[1]
    start = copy.deepcopy(model)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.5, model=model, bn_policy=policy)
    opt.step(closure_for(model, opt, x, y))
    return start, model, bn, x, y


def test_bn_clean_keeps_clean_statistics_and_counts_once():
    start, model, bn, x, y = _bn_after_step("clean")
    ref = copy.deepcopy(start)
    ref(x)  # one clean forward from the starting statistics
    assert bn.num_batches_tracked.item() == 1
    assert torch.equal(bn.running_mean, ref[1].running_mean)
    assert torch.equal(bn.running_var, ref[1].running_var)


def test_bn_perturbed_keeps_only_perturbed_statistics():
    start, model, bn, x, y = _bn_after_step("perturbed")
    assert bn.num_batches_tracked.item() == 1
    # The statistics are not the clean ones.
    ref = copy.deepcopy(start)
    ref(x)
    assert not torch.allclose(bn.running_mean, ref[1].running_mean)
    # They are those of one forward at the perturbed weights from the starting statistics.
    pert = copy.deepcopy(start)
    loss = F.cross_entropy(pert(x), y)
    grads = torch.autograd.grad(loss, list(pert.parameters()))
    n = torch.sqrt(sum((g**2).sum() for g in grads))
    pert.load_state_dict(start.state_dict())
    with torch.no_grad():
        for p, g in zip(pert.parameters(), grads):
            p.add_(0.5 * g / n)
    pert(x)
    assert torch.allclose(bn.running_mean, pert[1].running_mean, atol=1e-6)


def test_bn_both_counts_twice_and_frozen_never_changes():
    _, _, bn, _, _ = _bn_after_step("both")
    assert bn.num_batches_tracked.item() == 2
    start, _, bn, _, _ = _bn_after_step("frozen")
    assert bn.num_batches_tracked.item() == 0
    assert torch.equal(bn.running_mean, start[1].running_mean)


def test_bn_policy_works_on_any_module_with_running_buffers():
    class CustomNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("running_scale", torch.ones(()))
            self.lin = nn.Linear(6, 3)

        def forward(self, x):
            if self.training:
                self.running_scale.mul_(0.9).add_(0.1 * x.abs().mean().detach())
            return self.lin(x)

    model = CustomNorm()
    x, y = batch()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, model=model, bn_policy="frozen")
    opt.step(closure_for(model, opt, x, y))
    assert model.running_scale.item() == 1.0


def test_manual_form_refuses_policies_that_need_a_pre_snapshot():
    x, y = batch()
    model = mlp(bn=True)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), model=model, bn_policy="frozen")
    F.cross_entropy(model(x), y).backward()
    with pytest.raises(RuntimeError, match="begin_step"):
        opt.first_step()
    # With begin_step() the manual form supports it.
    opt.zero_grad()
    opt.begin_step()
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    F.cross_entropy(model(x), y).backward()
    opt.second_step()
    assert model[1].num_batches_tracked.item() == 1  # only the refused step's forward


# RNG replay -----------------------------------------------------------------------------------------
def test_replay_rng_gives_same_dropout_masks_in_both_passes():
    x, y = batch()
    model = mlp(dropout=0.5)
    masks = []
    model[2].register_forward_hook(lambda m, i, o: masks.append(o != 0))
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, model=model, replay_rng=True)
    opt.step(closure_for(model, opt, x, y))
    assert torch.equal(masks[0], masks[1])
    masks.clear()
    opt.replay_rng = False
    opt.step(closure_for(model, opt, x, y))
    assert not torch.equal(masks[0], masks[1])


# 9 ------------------------------------------------------------------------------------------------
def test_restore_keeps_parameters_as_views_of_a_flat_buffer():
    x, y = batch()
    model = mlp()
    params = list(model.parameters())
    flat_buf = torch.zeros(sum(p.numel() for p in params))
    offset = 0
    for p in params:
        n = p.numel()
        flat_buf[offset : offset + n].copy_(p.detach().reshape(-1))
        p.data = flat_buf[offset : offset + n].view_as(p)
        offset += n
    ptrs = [p.data_ptr() for p in params]
    opt = _sgd_sam(model)
    for _ in range(3):
        opt.step(closure_for(model, opt, x, y))
    assert [p.data_ptr() for p in params] == ptrs
    assert torch.equal(flat_buf, flat(model))


# 10 -----------------------------------------------------------------------------------------------
def test_compiled_model_fullgraph_matches_eager_over_several_steps():
    x, y = batch()
    eager, comp = mlp(), mlp()
    compiled = torch.compile(comp, fullgraph=True, backend="aot_eager")
    oe, oc = _sgd_sam(eager), _sgd_sam(comp)
    for _ in range(3):
        oe.step(closure_for(eager, oe, x, y))
        oc.step(closure_for(compiled, oc, x, y))
    assert torch.allclose(flat(eager), flat(comp), atol=1e-6)


def test_ascent_and_restore_trace_without_graph_breaks():
    """The hot path (perturb, restore) contains no .item() or host sync: dynamo traces it whole."""
    x, y = batch()
    model = mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, model=model, nonfinite="ignore")
    F.cross_entropy(model(x), y).backward()
    explanation = torch._dynamo.explain(opt._ascend)()
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()


# 11 -----------------------------------------------------------------------------------------------
def test_bf16_perturbation_is_rounded_once_and_restore_is_exact():
    torch.manual_seed(0)
    model = nn.Linear(64, 4).to(torch.bfloat16)
    x = torch.randn(32, 64, dtype=torch.bfloat16)
    y = torch.randint(0, 4, (32,))
    start = [p.detach().clone() for p in model.parameters()]
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.05)
    for _ in range(50):
        F.cross_entropy(model(x).float(), y).backward()
        grads = [p.grad.float() for p in model.parameters()]
        opt.first_step()
        # Stated bound: every realised coordinate is the bf16 round-to-nearest of θ + ε computed in
        # fp32, i.e. within half a bf16 ulp of the exact perturbed point.
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        for p, s, g in zip(model.parameters(), start, grads):
            exact = s.float() + 0.05 * g / (norm + 1e-12)
            assert torch.equal(p.detach(), exact.to(torch.bfloat16))
            ulp = torch.finfo(torch.bfloat16).eps * exact.abs().clamp_min(torch.finfo(torch.bfloat16).tiny)
            assert ((p.detach().float() - exact).abs() <= ulp / 2 + 1e-30).all()
        F.cross_entropy(model(x).float(), y).backward()
        opt.second_step(zero_grad=True)
    # With lr = 0 the weights must come back bit-exactly after 50 perturb/restore cycles.
    for p, s in zip(model.parameters(), start):
        assert torch.equal(p.detach(), s)


# 13 -----------------------------------------------------------------------------------------------
# "ignore" takes the sync-free path (scale kept on the device, directions sanitised); "skip" on the
# CPU reads the norm on the host. Both must agree.
@pytest.mark.parametrize("nonfinite", ["skip", "ignore"])
def test_zero_gradient_gives_no_nan(nonfinite):
    p = nn.Parameter(torch.ones(3))
    opt = SAM(torch.optim.SGD([p], lr=0.1), rho=0.05, nonfinite=nonfinite)

    def closure():
        opt.zero_grad()
        loss = (p * 0).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(p.detach(), torch.ones(3))


def _poisoned_closure(model, opt, x, y, bad_pass):
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if len(calls) == bad_pass:
            loss = loss * float("nan")
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("nonfinite", ["skip", "ignore"])
def test_nonfinite_clean_gradient_means_no_perturbation(nonfinite):
    x, y = batch()
    model = mlp()
    ref = copy.deepcopy(model)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, nonfinite=nonfinite)
    opt.step(_poisoned_closure(model, opt, x, y, bad_pass=1))
    # Pass 2 ran at the clean point, so the step equals plain SGD.
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    expected = torch.cat([(p - 0.1 * g).reshape(-1) for p, g in zip(ref.parameters(), grads)])
    assert torch.allclose(flat(model), expected.detach(), atol=1e-7)
    assert opt.skipped_ascents == 1 and opt.skipped_steps == 0


def test_nonfinite_perturbed_gradient_restores_and_skips():
    x, y = batch()
    model = mlp()
    before = flat(model).clone()
    opt = _sgd_sam(model)
    opt.step(_poisoned_closure(model, opt, x, y, bad_pass=2))
    assert torch.equal(flat(model), before)
    assert opt.skipped_steps == 1
    assert opt.base_optimizer.state_dict()["state"] == {}  # no momentum was polluted


@pytest.mark.parametrize(
    "poison",
    [[float("inf")], [float("-inf")], [float("nan")], [float("inf"), float("-inf")]],
    ids=["inf", "-inf", "nan", "inf_and_-inf"],
)
def test_any_nonfinite_entry_in_the_perturbed_gradient_skips_the_step(poison):
    # Manual form, one poisoned entry (or a +inf/-inf pair that a careless sum would cancel
    # into NaN and a careless max would hide) in an otherwise finite gradient.
    x, y = batch()
    model = mlp()
    before = flat(model).clone()
    opt = _sgd_sam(model)
    F.cross_entropy(model(x), y).backward()
    assert opt.first_step()
    F.cross_entropy(model(x), y).backward()
    grad = next(model.parameters()).grad
    for i, value in enumerate(poison):
        grad.view(-1)[i] = value
    opt.second_step()
    assert torch.equal(flat(model), before)
    assert opt.skipped_steps == 1


# 15 -----------------------------------------------------------------------------------------------
def test_parameters_with_gradient_in_one_pass_only():
    x, y = batch()

    class TwoBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(6, 3)
            self.b = nn.Linear(6, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return self.a(x) + (self.b(x) if self.calls % 2 == 1 else 0)  # b only in the clean pass

    model = TwoBranch()
    b_before = model.b.weight.detach().clone()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    opt.step(closure_for(model, opt, x, y))
    assert torch.equal(model.b.weight, b_before)  # restored, and no gradient in pass 2 → not stepped

    model.calls = 1  # now b appears only in the perturbed pass: not perturbed, but stepped
    opt.step(closure_for(model, opt, x, y))
    assert not torch.equal(model.b.weight, b_before)


# 16 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attach_to", ["wrapper", "base"])
def test_lr_scheduler_on_wrapper_or_base_agree(attach_to):
    x, y = batch()
    model = mlp()
    opt = _sgd_sam(model)
    target = opt if attach_to == "wrapper" else opt.base_optimizer
    sched = torch.optim.lr_scheduler.StepLR(target, step_size=1, gamma=0.5)
    for _ in range(3):
        opt.step(closure_for(model, opt, x, y))
        sched.step()
    assert opt.param_groups is opt.base_optimizer.param_groups
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)
    assert opt.base_optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**3)


# bad arguments ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"rho": -0.1}, ValueError, "rho must be"),
        ({"rho": float("nan")}, ValueError, "rho must be"),
        ({"geometry": "fancy"}, ValueError, "unknown geometry 'fancy'; valid choices: sam, asam_official"),
        ({"bn_policy": "sometimes"}, ValueError, "unknown bn_policy"),
        ({"interval": 0}, ValueError, "interval must be"),
        ({"eta": -1.0, "geometry": "asam_official"}, ValueError, "eta must be"),
        ({"nonfinite": "panic"}, ValueError, "unknown nonfinite policy"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, exc, match):
    model = mlp()
    with pytest.raises(exc, match=match):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)


def test_non_optimizer_base_is_a_type_error():
    with pytest.raises(TypeError, match="wraps a torch.optim.Optimizer instance, got list"):
        SAM(list(mlp().parameters()))
    model = mlp()
    with pytest.raises(TypeError, match="cannot wrap another"):
        SAM(SAM(torch.optim.SGD(model.parameters(), lr=0.1)))


def test_registry_errors_are_one_line_config_errors():
    from samlens.errors import ConfigError

    with pytest.raises(ConfigError, match="rho must be"):
        build_optimizer("sam", mlp(), rho=-1)
    with pytest.raises(ConfigError, match="unknown optimizer 'sgdd'; valid choices: .*sam"):
        build_optimizer("sgdd", mlp())

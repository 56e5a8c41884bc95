"""SAM with torch.amp.GradScaler: scaled passes, inf handling, one update() per step."""

import copy

import torch
from torch.nn import functional as F

from samlens.optim import SAM

from .helpers import batch, flat, mlp, reference_sam_grads


def _scaled_closure(model, opt, scaler, x, y, bad_pass=None):
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        poison = float("inf") if len(calls) == bad_pass else 1.0
        scaler.scale(loss * poison).backward()
        return loss

    return closure, calls


def _setup(**kw):
    model = mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.05, grad_scaler=scaler, **kw)
    return model, scaler, opt


def test_scaled_sam_step_equals_unscaled_sam_step():
    x, y = batch()
    model, scaler, opt = _setup()
    ref = copy.deepcopy(model)
    ref_opt = SAM(torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9), rho=0.05)
    for _ in range(3):
        closure, calls = _scaled_closure(model, opt, scaler, x, y)
        opt.step(closure)
        assert len(calls) == 2

        def ref_closure():
            ref_opt.zero_grad()
            loss = F.cross_entropy(ref(x), y)
            loss.backward()
            return loss

        ref_opt.step(ref_closure)
    assert torch.allclose(flat(model), flat(ref), atol=1e-6)
    assert scaler.get_scale() == 2.0**10


def test_ascent_weight_decay_uses_unscaled_gradient():
    x, y = batch()
    model, scaler, opt = _setup(ascent_weight_decay=True)
    for g in opt.param_groups:
        g["weight_decay"] = 0.1
    ref = copy.deepcopy(model)
    ref_opt = SAM(
        torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1),
        rho=0.05,
        ascent_weight_decay=True,
    )
    closure, _ = _scaled_closure(model, opt, scaler, x, y)
    opt.step(closure)

    def ref_closure():
        ref_opt.zero_grad()
        loss = F.cross_entropy(ref(x), y)
        loss.backward()
        return loss

    ref_opt.step(ref_closure)
    assert torch.allclose(flat(model), flat(ref), atol=1e-6)


def test_inf_in_first_pass_means_no_perturbation_and_step_proceeds():
    x, y = batch()
    model, scaler, opt = _setup()
    ref = copy.deepcopy(model)
    closure, _ = _scaled_closure(model, opt, scaler, x, y, bad_pass=1)
    opt.step(closure)
    grads = torch.autograd.grad(F.cross_entropy(ref(x), y), list(ref.parameters()))
    expected = torch.cat([(p - 0.1 * g).reshape(-1) for p, g in zip(ref.parameters(), grads)])
    assert torch.allclose(flat(model), expected.detach(), atol=1e-6)
    assert opt.skipped_ascents == 1 and opt.skipped_steps == 0
    assert scaler.get_scale() == 2.0**10  # the scaler only judges the update gradient


def test_inf_in_second_pass_restores_skips_and_updates_scale_once():
    x, y = batch()
    model, scaler, opt = _setup()
    before = flat(model).clone()
    closure, _ = _scaled_closure(model, opt, scaler, x, y, bad_pass=2)
    opt.step(closure)
    assert torch.equal(flat(model), before)
    assert opt.skipped_steps == 1
    assert scaler.get_scale() == 2.0**9  # exactly one backoff: one update() per SAM step
    # The next, healthy step runs normally.
    closure, _ = _scaled_closure(model, opt, scaler, x, y)
    opt.step(closure)
    assert not torch.equal(flat(model), before)
    assert scaler.get_scale() == 2.0**9


def test_max_grad_norm_under_grad_scaler_clips_the_unscaled_update_gradient():
    x, y = batch()
    model, scaler, opt = _setup(max_grad_norm=0.05)
    ref = copy.deepcopy(model)
    base = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        closure, calls = _scaled_closure(model, opt, scaler, x, y)
        opt.step(closure)
        assert len(calls) == 2
        grads = reference_sam_grads(ref, x, y, 0.05)
        total = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))  # clip_grad_norm_ by hand
        coef = min(1.0, 0.05 / (total.item() + 1e-6))
        assert coef < 1.0
        for p, g in zip(ref.parameters(), grads):
            p.grad = g * coef
        base.step()
    assert torch.allclose(flat(model), flat(ref), atol=1e-6)
    assert scaler.get_scale() == 2.0**10 and opt.skipped_steps == 0


def test_max_grad_norm_under_grad_scaler_still_skips_an_inf_step():
    x, y = batch()
    model, scaler, opt = _setup(max_grad_norm=0.05)
    before = flat(model).clone()
    closure, _ = _scaled_closure(model, opt, scaler, x, y, bad_pass=2)
    opt.step(closure)
    assert torch.equal(flat(model), before)
    assert opt.skipped_steps == 1 and scaler.get_scale() == 2.0**9

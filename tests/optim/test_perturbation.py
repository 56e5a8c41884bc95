"""The perturbation core against closed forms written out here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from samlens.optim.perturbation import (
    Perturbation,
    ascent_directions,
    ascent_scale,
    inverse_norm,
    phantom,
    radius,
    shadow,
)


def _tensors(dtype: torch.dtype) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(4, 3, generator=g).to(dtype), torch.randn(3, generator=g).to(dtype)]
    grads = [torch.randn(p.shape, generator=g).to(dtype) for p in params]
    return params, grads


def _reference(params, grads, geometry, eta, is_weight):
    """ε/ρ = T²g / (‖Tg‖ + 1e-12), everything in fp64."""
    ts = []
    for p, w in zip(params, is_weight):
        if geometry == "sam" or (geometry == "asam_official" and not w):
            ts.append(torch.ones_like(p, dtype=torch.float64))
        else:
            ts.append(p.double().abs() + eta)
    tg = [t * g.double() for t, g in zip(ts, grads)]
    norm = math.sqrt(sum(float((x * x).sum()) for x in tg))
    return [t * x / (norm + 1e-12) for t, x in zip(ts, tg)], norm


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("geometry,eta", [("sam", 0.0), ("asam_official", 0.01), ("asam_common", 0.0)])
def test_ascent_direction_matches_the_closed_form(dtype, geometry, eta):
    params, grads = _tensors(dtype)
    is_weight = [True, False]
    wide = [g.double() if dtype == torch.float64 else g.float() for g in grads]
    directions, norm = ascent_directions(params, wide, geometry, eta, is_weight)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    assert norm.dtype == compute and all(d.dtype == compute for d in directions)
    expected, expected_norm = _reference(params, grads, geometry, eta, is_weight)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert float(norm) == pytest.approx(expected_norm, rel=tol)
    for d, e in zip(directions, expected):
        torch.testing.assert_close(d.double() / (float(norm) + 1e-12), e, atol=tol, rtol=tol)


@pytest.mark.parametrize("sync", [True, False])
def test_inverse_norm_and_scale(sync):
    inv, finite = inverse_norm(torch.tensor(4.0, dtype=torch.float64), sync=sync)
    assert bool(finite) and float(inv) == 1 / (4 + 1e-12)
    inv, finite = inverse_norm(torch.tensor(float("inf")), sync=sync)
    assert not bool(finite) and float(inv) == 0.0
    torch.testing.assert_close(
        ascent_scale(torch.tensor([1.0, 3.0], dtype=torch.float64), 0.5),
        torch.tensor([0.5 / (1 + 1e-12), 0.5 / (3 + 1e-12)], dtype=torch.float64),
    )


def test_relative_radius_closed_form():
    params = [torch.tensor([3.0, 0.0]), torch.tensor([[4.0]])]
    assert radius(0.2, "absolute", params) == 0.2
    assert float(radius(0.2, "relative", params)) == pytest.approx(0.2 * 5.0)
    bf16 = [torch.tensor([3.0, 4.0], dtype=torch.bfloat16)]
    r = radius(0.1, "relative", bf16)
    assert r.dtype == torch.float32 and float(r) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="rho_mode"):
        radius(0.1, "other", params)


@pytest.mark.parametrize("rho_mode", ["absolute", "relative"])
def test_phantom_matches_the_closed_form(rho_mode):
    params, grads = _tensors(torch.float64)
    out = phantom(params, [grads[0], None], 0.3, rho_mode)
    size = math.sqrt(sum(float((p * p).sum()) for p in params))
    r = 0.3 * size if rho_mode == "relative" else 0.3
    norm = float(grads[0].norm())
    torch.testing.assert_close(out[0], params[0] + r * grads[0] / (norm + 1e-12), atol=1e-14, rtol=0)
    assert torch.equal(out[1], params[1])  # no gradient: not moved


@pytest.mark.parametrize("sanitise", [False, True])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_apply_moves_by_epsilon_and_restore_is_bit_exact(dtype, sanitise):
    params, grads = _tensors(dtype)
    before = [p.clone() for p in params]
    wide = [(g.double() if dtype == torch.float64 else g.float()).clone() for g in grads]  # scratch
    directions, norm = ascent_directions(params, wide, "sam")
    inv, _ = inverse_norm(norm, sync=not sanitise)
    pert = Perturbation()
    pert.apply(params, directions, [0.5, 0.25], inv, sanitise=sanitise)
    n = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
    for p, b, g, rho in zip(params, before, grads, (0.5, 0.25)):
        # one rounding from the compute-dtype result
        expected = (b.double() + rho * g.double() / (n + 1e-12)).to(dtype)
        torch.testing.assert_close(p, expected, atol=0 if dtype == torch.bfloat16 else 1e-6, rtol=1e-6)
    pert.restore()
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    assert pert.params == []


def test_sanitised_non_finite_norm_leaves_parameters_unchanged():
    params, grads = _tensors(torch.float32)
    grads[0][0, 0] = float("nan")
    before = [p.clone() for p in params]
    directions, norm = ascent_directions(params, grads, "sam")
    inv, finite = inverse_norm(norm, sync=False)
    Perturbation().apply(params, directions, [0.1, 0.1], inv, sanitise=True)
    assert not bool(finite)
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_shadow_restores_the_method_and_an_earlier_instance_attribute():
    layer = nn.Linear(2, 2)
    x = torch.randn(3, 2)
    with shadow(layer, "forward", lambda t: t * 0):
        assert torch.equal(layer(x), x * 0)
    assert "forward" not in vars(layer)
    assert torch.equal(layer(x), nn.functional.linear(x, layer.weight, layer.bias))

    def first(t):
        return t + 1

    layer.forward = first
    with shadow(layer, "forward", lambda t: t * 0):
        pass
    assert vars(layer)["forward"] is first

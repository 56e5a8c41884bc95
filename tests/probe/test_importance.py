import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samlens.errors import ConfigError
from samlens.models import get_model
from samlens.probe.importance import gini, importance_weights, lorenz_curve, phantom_importance_weights


def test_uniform_has_gini_zero():
    assert gini(np.full(7, 0.3)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 100])
def test_one_hot_has_gini_one_minus_one_over_n(n):
    w = np.zeros(n)
    w[n // 2] = 2.5
    assert gini(w) == pytest.approx(1 - 1 / n, abs=1e-12)


def test_hand_computed_case():
    # weights 1, 2, 3, 4 (sum 10): L = 0, .1, .3, .6, 1 at p = 0, .25, .5, .75, 1
    # area = .25 * (0+.1 + .1+.3 + .3+.6 + .6+1)/2 = .25 * 3.0/2 = .375 -> Gini = .25
    p, L = lorenz_curve([3, 1, 4, 2])
    np.testing.assert_allclose(p, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(L, [0, 0.1, 0.3, 0.6, 1])
    assert gini([3, 1, 4, 2]) == pytest.approx(0.25)


def test_invalid_weights():
    with pytest.raises(ConfigError):
        gini([])
    with pytest.raises(ConfigError):
        gini([0.0, 0.0])
    with pytest.raises(ConfigError):
        gini([1.0, -1.0])


def test_importance_weights_are_half_l1_of_residual():
    z = torch.randn(6, 4, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    r = F.softmax(z, 1) - F.one_hot(y, 4)
    torch.testing.assert_close(importance_weights(z, y), 0.5 * r.abs().sum(1))
    z1 = torch.randn(6, 1, dtype=torch.float64)
    y1 = torch.randint(0, 2, (6,))
    r1 = torch.sigmoid(z1[:, 0]) - y1  # logistic residual
    torch.testing.assert_close(importance_weights(z1, y1), r1.abs())


def test_phantom_weights_use_the_lsam_head():
    model = get_model("mlp", 3, (5,), hidden=(4,)).double()
    x, y = torch.randn(10, 5, dtype=torch.float64), torch.randint(0, 3, (10,))
    lam, lam_t = phantom_importance_weights(model, x, y, rho=0.5)
    torch.testing.assert_close(lam, importance_weights(model(x), y))
    g = torch.autograd.grad(F.cross_entropy(model(x), y), [model.head.weight, model.head.bias])
    norm = torch.sqrt(g[0].pow(2).sum() + g[1].pow(2).sum())
    with torch.no_grad():
        model.head.weight += 0.5 * g[0] / norm
        model.head.bias += 0.5 * g[1] / norm
    torch.testing.assert_close(lam_t, importance_weights(model(x), y))

"""paper_cnn: three 3x3 stride-2 convolutions (32/64/128 x width), ReLU, flatten, linear head."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from samlens.errors import ConfigError
from samlens.models import get_model, list_models
from samlens.optim import build_optimizer


def _closed_form_params(c_in: int, widths: list[int], h: int, w: int, classes: int) -> int:
    # Each conv: k*k*c_in*c_out weights + c_out biases; each halves a side (ceil, padding 1);
    # the head: (c_last * h/8 * w/8) * classes weights + classes biases.
    total, prev = 0, c_in
    for c in widths:
        total += 9 * prev * c + c
        prev = c
    side = math.ceil(math.ceil(math.ceil(h / 2) / 2) / 2) * math.ceil(math.ceil(math.ceil(w / 2) / 2) / 2)
    return total + prev * side * classes + classes


def test_registered():
    assert "paper_cnn" in list_models()


@pytest.mark.parametrize(("shape", "dim"), [((1, 32, 16), 128 * 4 * 2), ((1, 56, 28), 128 * 7 * 4)])
def test_shapes_and_forward_is_head_of_features(shape, dim):
    model = get_model("paper_cnn", 5, shape).eval()
    x = torch.randn(3, *shape)
    feats = model.features(x)
    assert isinstance(model.head, nn.Linear)
    assert model.feature_dim == dim and feats.shape == (3, dim)
    out = model(x)
    assert out.shape == (3, 5)
    torch.testing.assert_close(out, model.head(feats))


@pytest.mark.parametrize(
    ("width", "channels"), [(1.0, [32, 64, 128]), (0.5, [16, 32, 64]), (2, [64, 128, 256])]
)
def test_channels_per_width(width, channels):
    model = get_model("paper_cnn", 5, (1, 32, 16), width=width)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == channels
    assert all(c.kernel_size == (3, 3) and c.stride == (2, 2) for c in convs)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    assert model.feature_dim == channels[-1] * 4 * 2


@pytest.mark.parametrize(("shape", "width"), [((1, 32, 16), 1.0), ((1, 56, 28), 0.5), ((3, 64, 32), 1.0)])
def test_parameter_count_closed_form(shape, width):
    model = get_model("paper_cnn", 5, shape, width=width)
    widths = [round(c * width) for c in (32, 64, 128)]
    assert sum(p.numel() for p in model.parameters()) == _closed_form_params(shape[0], widths, *shape[1:], 5)
    # 1x32x16, width 1: 320 + 18,496 + 73,856 conv parameters and a 1,024 x 5 head (+ 5 biases).
    if shape == (1, 32, 16) and width == 1.0:
        assert sum(p.numel() for p in model.parameters()) == 320 + 18_496 + 73_856 + 1024 * 5 + 5


@pytest.mark.parametrize("width", [0, -1.0, "wide", True, float("nan")])
def test_bad_width_is_a_config_error(width):
    with pytest.raises(ConfigError, match="width"):
        get_model("paper_cnn", 5, (1, 32, 16), width=width)


def test_needs_an_image_shape():
    with pytest.raises(ConfigError, match="input_shape"):
        get_model("paper_cnn", 5, (16,))


def test_lsam_steps_on_it():
    torch.manual_seed(0)
    model = get_model("paper_cnn", 5, (1, 32, 16), width=0.25)
    x, y = torch.randn(16, 1, 32, 16), torch.randint(0, 5, (16,))
    opt = build_optimizer("lsam", model, rho=0.05, lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    losses = [float(opt.step(closure).detach()) for _ in range(5)]
    assert all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert losses[-1] < losses[0]

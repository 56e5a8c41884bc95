import pytest
import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models import get_model, list_models
from samlens.models.toy import effective_coefficients

CASES = [
    ("mlp", (3, 8, 4), {"hidden": (16, 8)}),
    ("small_cnn", (3, 64, 32), {"width": 4, "norm": "batch"}),
    ("small_cnn", (3, 64, 32), {"width": 4, "norm": "group"}),
    ("small_cnn", (1, 28, 28), {"width": 4, "norm": "none"}),
    ("cifar_resnet18", (3, 32, 32), {"width": 4}),
    ("cifar_resnet18", (3, 48, 24), {"width": 4, "norm": "group"}),
    ("diag_linear", (5,), {}),
    ("two_layer_linear", (5,), {"width": 7}),
    ("two_layer_relu", (5,), {"width": 7}),
]


def test_registered_names():
    assert {"mlp", "small_cnn", "cifar_resnet18", "diag_linear", "two_layer_linear", "two_layer_relu"} <= set(
        list_models()
    )


@pytest.mark.parametrize(("name", "shape", "options"), CASES)
def test_protocol_forward_is_head_of_features(name, shape, options):
    model = get_model(name, 3, shape, **options).eval()
    x = torch.randn(4, *shape)
    feats = model.features(x)
    assert isinstance(model.head, nn.Linear)
    assert feats.shape == (4, model.feature_dim)
    assert model.head.in_features == model.feature_dim
    out = model(x)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, model.head(feats))


def test_resnet18_default_width_and_size():
    model = get_model("cifar_resnet18", 10, (3, 32, 32))
    assert model.feature_dim == 512
    # Standard CIFAR ResNet-18 has ~11.17M parameters.
    n = sum(p.numel() for p in model.parameters())
    assert 11_100_000 < n < 11_200_000
    assert get_model("cifar_resnet18", 10, (3, 32, 32), width=16).feature_dim == 128


def test_unknown_name_and_bad_option_are_config_errors():
    with pytest.raises(ConfigError, match="valid choices"):
        get_model("nope", 2, (3, 8, 8))
    with pytest.raises(ConfigError):
        get_model("small_cnn", 2, (3, 8, 8), norm="layer")
    with pytest.raises(ConfigError):
        get_model("mlp", 2, (4,), bogus=1)
    with pytest.raises(ConfigError):
        get_model("small_cnn", 2, (8,))


def test_linear_toy_effective_coefficients_match_closed_form():
    diag = get_model("diag_linear", 1, (4,), init_scale=0.5)
    with torch.no_grad():
        diag.u.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        diag.head.weight.copy_(torch.tensor([[3.0, 1.0, 2.0, -4.0]]))
    x = torch.randn(10, 4)
    torch.testing.assert_close(effective_coefficients(diag, x), torch.tensor([3.0, 2.0, -2.0, -2.0]))
    two = get_model("two_layer_linear", 1, (4,), width=6)
    beta = (two.body.weight.T @ two.head.weight.T).squeeze(1)
    torch.testing.assert_close(effective_coefficients(two, x), beta)


@pytest.mark.parametrize(
    "name, shape, options, message",
    [
        ("small_cnn", (3, 8, 8), {"width": -1}, "width must be an integer >= 1, got -1"),
        ("small_cnn", (3, 8, 8), {"width": 0}, "width must be an integer >= 1, got 0"),
        ("small_cnn", (3, 8, 8), {"width": "abc"}, "model 'small_cnn': option width must be int, got 'abc'"),
        ("small_cnn", (3, 8, 8), {"width": 2.5}, "model 'small_cnn': option width must be int, got 2.5"),
        ("small_cnn", (3, 8, 8), {"norm": 3}, "model 'small_cnn': option norm must be str, got 3"),
        ("cifar_resnet18", (3, 8, 8), {"width": -1}, "width must be an integer >= 1, got -1"),
        ("mlp", (4,), {"hidden": [8, -1]}, "hidden size must be an integer >= 1, got -1"),
        (
            "mlp",
            (4,),
            {"hidden": "wide"},
            "model 'mlp': option hidden must be Sequence[int] | int, got 'wide'",
        ),
        ("two_layer_relu", (4,), {"width": 0}, "width must be an integer >= 1, got 0"),
        ("two_layer_linear", (4,), {"width": -3}, "width must be an integer >= 1, got -3"),
        ("diag_linear", (4,), {"init_scale": "big"}, "model 'diag_linear': option init_scale must be float"),
        ("diag_linear", (4,), {"bias": 1}, "model 'diag_linear': option bias must be bool, got 1"),
        (
            "mlp",
            (4,),
            {"bogus": 1},
            "model 'mlp': unknown option(s) bogus; valid options: activation, hidden",
        ),
    ],
)
def test_invalid_options_are_one_line_config_errors(name, shape, options, message):
    with pytest.raises(ConfigError) as err:
        get_model(name, 2, shape, **options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_valid_option_types_still_build():
    assert get_model("mlp", 2, (4,), hidden=8).feature_dim == 8  # a single int is one hidden layer
    assert get_model("mlp", 2, (4,), hidden=(8, 4)).feature_dim == 4
    assert get_model("diag_linear", 1, (4,), init_scale=1).u.tolist() == [1.0] * 4  # ints are floats

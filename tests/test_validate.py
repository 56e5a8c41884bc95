import math
import re

import numpy as np
import pytest

from samlens.errors import ConfigError
from samlens.validate import (
    check_betas,
    check_bool,
    check_eps,
    check_fraction,
    check_int,
    check_lr,
    check_momentum,
    check_positive_int,
    check_rho,
    check_weight_decay,
)


@pytest.mark.parametrize(
    "check, bad, domain",
    [
        (check_rho, -0.1, "[0, inf)"),
        (check_rho, math.inf, "[0, inf)"),
        (check_rho, math.nan, "[0, inf)"),
        (check_lr, 0.0, "(0, inf)"),
        (check_momentum, 1.0, "[0, 1)"),
        (check_momentum, 1.5, "[0, 1)"),
        (check_weight_decay, -1e-4, "[0, inf)"),
        (check_eps, 0.0, "(0, inf)"),
        (check_rho, True, "[0, inf)"),
        (check_rho, "abc", "[0, inf)"),
    ],
)
def test_values_outside_the_domain_name_option_value_and_domain(check, bad, domain):
    with pytest.raises(ConfigError) as err:
        check(bad)
    message = str(err.value)
    assert "\n" not in message
    assert domain in message and repr(bad) in message


@pytest.mark.parametrize(
    "check, good",
    [(check_rho, 0.0), (check_lr, 1e-9), (check_momentum, 0.0), (check_momentum, 0.999), (check_eps, 1e-12)],
)
def test_values_inside_the_domain_are_returned_as_float(check, good):
    assert check(good) == good and isinstance(check(good), float)


def test_betas_each_in_half_open_unit_interval():
    assert check_betas([0.9, 0.999]) == (0.9, 0.999)
    for bad in ([0.9], [0.9, 1.0], "ab", [-0.1, 0.5], 0.9):
        with pytest.raises(ConfigError, match="betas"):
            check_betas(bad)


def test_fraction_is_closed_unit_interval():
    assert check_fraction("correlation", 1.0) == 1.0
    with pytest.raises(ConfigError, match=r"correlation must be in \[0, 1\], got 1.01"):
        check_fraction("correlation", 1.01)


def test_integers_refuse_fractions_and_booleans():
    assert check_positive_int("width", 3) == 3
    assert check_positive_int("width", 3.0) == 3
    for bad in (0, 2.5, True, "3"):
        with pytest.raises(ConfigError, match="width"):
            check_positive_int("width", bad)
    assert check_int("k", 5, low=1, high=5) == 5


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_bool_accepts_real_booleans(value):
    assert check_bool("flag", value) is bool(value)


@pytest.mark.parametrize("value", ["false", 0, 1, None, 1.0])
def test_check_bool_refuses_what_only_looks_boolean(value):
    with pytest.raises(ConfigError, match=rf"^flag must be true or false, got {re.escape(repr(value))}$"):
        check_bool("flag", value)

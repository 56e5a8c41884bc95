import math

import numpy as np
import pytest

from samlens.errors import ConfigError
from samlens.probe import metrics as M

# Hand-made example: 3 groups.
#   group 0: 4 examples, 3 correct -> 0.75
#   group 1: 2 examples, 1 correct -> 0.5
#   group 2: 4 examples, 4 correct -> 1.0
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
P = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])
G = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])


def test_per_group_accuracy_by_hand():
    assert M.per_group_accuracy(Y, P, G) == {0: 0.75, 1: 0.5, 2: 1.0}


def test_worst_group_accuracy_by_hand():
    assert M.worst_group_accuracy(Y, P, G) == 0.5


def test_mean_accuracy_by_hand():
    assert M.mean_accuracy(Y, P) == 8 / 10


def test_balanced_accuracy_by_hand():
    # class 0: 3 of 4 recalled; class 1: 5 of 6 recalled.
    assert M.balanced_accuracy(Y, P) == pytest.approx((3 / 4 + 5 / 6) / 2, abs=1e-15)


def test_train_weighted_mean_by_hand():
    # Training proportions 0.5 / 0.1 / 0.4 (10 examples: 5, 1, 4).
    train_groups = np.array([0] * 5 + [1] + [2] * 4)
    expected = 0.75 * 0.5 + 0.5 * 0.1 + 1.0 * 0.4
    assert M.train_weighted_mean_accuracy(M.per_group_accuracy(Y, P, G), train_groups) == pytest.approx(
        expected, abs=1e-15
    )
    # ... and it differs from the plain mean of this test set (0.8).
    assert expected != pytest.approx(0.8)


def test_train_weighted_mean_ignores_groups_absent_from_train():
    per_group = {0: 0.5, 1: 0.25}
    assert M.train_weighted_mean_accuracy(per_group, np.array([0, 0]), num_groups=2) == 0.5


def test_group_proportions():
    assert M.group_proportions(np.array([1, 1, 0, 2]), num_groups=4) == {0: 0.25, 1: 0.5, 2: 0.25, 3: 0.0}


def test_mean_se_by_hand():
    mean, se, n = M.mean_se([1.0, 2.0, 3.0, 6.0])
    # mean 3; sample variance (4 + 1 + 0 + 9) / 3 = 14/3; se = sqrt(14/3) / 2.
    assert (mean, n) == (3.0, 4)
    assert se == pytest.approx(math.sqrt(14 / 3) / 2, abs=1e-15)


def test_mean_se_single_value_has_undefined_error():
    mean, se, n = M.mean_se([0.7])
    assert mean == 0.7 and n == 1 and math.isnan(se)


@pytest.mark.parametrize(
    "call",
    [
        lambda: M.mean_accuracy([0, 1], [0]),
        lambda: M.mean_accuracy([], []),
        lambda: M.per_group_accuracy([0, 1], [0, 1], [0]),
        lambda: M.per_group_accuracy([0, 1], [0, 1], [0, 0], num_groups=2),
        lambda: M.train_weighted_mean_accuracy({0: 1.0}, np.array([0, 1])),
        lambda: M.mean_se([]),
        lambda: M.mean_se([1.0, float("nan")]),
    ],
)
def test_bad_input_is_a_config_error(call):
    with pytest.raises(ConfigError):
        call()


def test_missing_group_message_names_the_group():
    with pytest.raises(ConfigError, match="group 1 has no examples"):
        M.worst_group_accuracy([0, 1], [0, 1], [0, 0], num_groups=2)

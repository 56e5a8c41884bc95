"""The headroom verdict on hand-made numbers (closed forms)."""

import math

import pytest

from samlens.report.verdict import (
    CANNOT_TEST,
    DOES_NOT_REPRODUCE,
    REPRODUCES,
    Estimate,
    binomial_se,
    estimate,
    fraction_of_range,
    is_testable,
    judge,
)


def test_binomial_se_closed_form():
    assert binomial_se(0.9, 400) == pytest.approx(math.sqrt(0.9 * 0.1 / 400))  # 0.015
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    assert binomial_se(1.0, 50) == 0.0
    assert math.isnan(binomial_se(0.7, 0))


def test_estimate_uses_seeds_when_several_else_the_binomial_se():
    e = estimate([0.80, 0.84, 0.82])
    assert (e.mean, e.n) == (pytest.approx(0.82), 3)
    assert e.se == pytest.approx(0.02 / math.sqrt(3))  # std(ddof=1) = 0.02
    one = estimate([0.9], n_test=[400])
    assert (one.mean, one.n, one.se) == (0.9, 1, pytest.approx(0.015))
    assert math.isnan(estimate([0.9]).se)  # one seed and no test size: unknown, never zero


def test_fraction_of_range():
    assert fraction_of_range(0.85, 0.80, 0.90) == pytest.approx(0.5)
    assert fraction_of_range(0.80, 0.80, 0.90) == 0.0
    assert fraction_of_range(0.95, 0.80, 0.90) == pytest.approx(1.5)  # above the ceiling
    assert fraction_of_range(0.75, 0.80, 0.90) == pytest.approx(-0.5)  # below the floor
    assert math.isnan(fraction_of_range(0.8, 0.9, 0.9))
    assert math.isnan(fraction_of_range(0.8, 0.9, 0.85))


def test_range_under_three_probe_ses_cannot_test_the_claim():
    floor, ceiling = Estimate(0.923, 0.014, 3), Estimate(0.968, 0.005, 3)
    # range 0.045; probe SE 0.016 -> 3 SE = 0.048 > 0.045
    sgd, sam = Estimate(0.922, 0.008, 3), Estimate(0.940, 0.016, 3)
    assert not is_testable(floor, ceiling, [sgd, sam])
    v = judge(floor, ceiling, sgd, sam)
    assert v.status == CANNOT_TEST
    assert "cannot test whether SAM raises" in v.sentence and "+0.045" in v.sentence
    assert v.fraction_treatment == pytest.approx((0.940 - 0.923) / 0.045)
    # Just above 3 SE it becomes testable.
    assert is_testable(floor, ceiling, [Estimate(0.93, 0.0149, 3)])


def test_unknown_se_cannot_test():
    floor, ceiling = Estimate(0.7, 0.01, 3), Estimate(0.9, 0.01, 3)
    assert (
        judge(floor, ceiling, Estimate(0.75, float("nan"), 1), Estimate(0.85, 0.01, 3)).status == CANNOT_TEST
    )


def test_reproduces_when_the_difference_exceeds_two_se_of_the_difference():
    floor, ceiling = Estimate(0.70, 0.01, 5), Estimate(0.90, 0.01, 5)
    sgd, sam = Estimate(0.75, 0.006, 5), Estimate(0.78, 0.008, 5)  # diff 0.03, SE 0.01 -> 3.0 SE
    v = judge(floor, ceiling, sgd, sam)
    assert v.status == REPRODUCES
    assert v.fraction_baseline == pytest.approx(0.25) and v.fraction_treatment == pytest.approx(0.40)
    assert "raises the hard feature's probe accuracy by 0.030 (3.0 SE" in v.sentence
    assert "25% vs 40% of the range" in v.sentence


def test_within_noise_or_lower_does_not_reproduce():
    floor, ceiling = Estimate(0.70, 0.01, 5), Estimate(0.90, 0.01, 5)
    sgd = Estimate(0.75, 0.006, 5)
    near = judge(floor, ceiling, sgd, Estimate(0.765, 0.008, 5))  # 1.5 SE
    assert near.status == DOES_NOT_REPRODUCE and "does not measurably change" in near.sentence
    lower = judge(floor, ceiling, sgd, Estimate(0.72, 0.008, 5))  # -3 SE
    assert lower.status == DOES_NOT_REPRODUCE and "lowers" in lower.sentence


def test_a_paired_difference_is_judged_on_its_own_se():
    floor, ceiling = Estimate(0.70, 0.01, 5), Estimate(0.90, 0.01, 5)
    base, treat = Estimate(0.800, 0.005, 5), Estimate(0.806, 0.005, 5)
    # Unpaired: 0.006 / sqrt(2)·0.005 = 0.85 SE, not measurable.
    assert judge(floor, ceiling, base, treat).status == DOES_NOT_REPRODUCE
    # The same means with a per-seed difference of SE 0.002 (seeds move together): 3.0 SE.
    paired = judge(floor, ceiling, base, treat, paired=Estimate(0.006, 0.002, 5))
    assert paired.status == REPRODUCES and "3.0 SE of the paired difference" in paired.sentence

"""Headroom verdicts: where a probe accuracy sits between an untrained floor and a hard-only ceiling.

A probe of the hard feature can only show that an optimizer learns it better if there is room
between two references measured with the same architecture and the same probe:

* the **floor** — the network at its initialisation, untrained (random features already decode
  much of a simple image feature);
* the **ceiling** — the same training on data where the easy feature is shuffled across
  examples, so that only the hard feature predicts the label.

``fraction = (probe − floor) / (ceiling − floor)`` places a run in that range. When the range is
smaller than three standard errors of one probe, no difference between optimizers inside it can
be told from noise, and the verdict is "cannot test the claim" rather than "does not reproduce".

Standard errors come from the seeds when there are several (std with ddof 1 / √n), otherwise
from the binomial SE of one probe's test accuracy, √(p(1−p)/n_test).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The range must exceed this many probe SEs for the claim to be testable.
RANGE_SE = 3.0
#: A difference between optimizers counts when it exceeds this many SEs of the difference.
DIFF_SE = 2.0

CANNOT_TEST = "cannot test the claim"
REPRODUCES = "reproduces"
DOES_NOT_REPRODUCE = "does not reproduce"


@dataclass(frozen=True)
class Estimate:
    """A probe accuracy: mean, standard error and the number of seeds it came from."""

    mean: float
    se: float
    n: int

    def __str__(self) -> str:
        if self.n == 0:
            return "–"
        if math.isnan(self.se):
            return f"{self.mean:.3f}"
        return f"{self.mean:.3f} ± {self.se:.3f}"


def binomial_se(p: float, n: int) -> float:
    """√(p(1−p)/n): the SE of an accuracy measured on ``n`` independent test examples."""
    if n <= 0:
        return float("nan")
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def estimate(values: Sequence[float], n_test: Sequence[float] | float | None = None) -> Estimate:
    """Mean ± SE over seeds; a single seed gets the binomial SE of its ``n_test`` examples."""
    vals = [float(v) for v in values]
    if not vals:
        return Estimate(float("nan"), float("nan"), 0)
    n = len(vals)
    mean = sum(vals) / n
    if n > 1:
        var = sum((v - mean) ** 2 for v in vals) / (n - 1)
        return Estimate(mean, math.sqrt(var / n), n)
    sizes = [n_test] if isinstance(n_test, (int, float)) else list(n_test or [])
    size = int(sizes[0]) if sizes and sizes[0] and not math.isnan(float(sizes[0])) else 0
    return Estimate(mean, binomial_se(mean, size), 1)


def fraction_of_range(probe: float, floor: float, ceiling: float) -> float:
    """(probe − floor) / (ceiling − floor); NaN when the ceiling is not above the floor."""
    span = ceiling - floor
    if not span > 0:
        return float("nan")
    return (probe - floor) / span


def is_testable(floor: Estimate, ceiling: Estimate, probes: Sequence[Estimate]) -> bool:
    """Whether the range exceeds ``RANGE_SE`` standard errors of the noisiest probe."""
    ses = [p.se for p in probes]
    if not ses or any(math.isnan(s) for s in ses):
        return False
    return ceiling.mean - floor.mean > RANGE_SE * max(ses)


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing a treatment with a baseline inside the floor–ceiling range."""

    status: str  # CANNOT_TEST, REPRODUCES or DOES_NOT_REPRODUCE
    sentence: str
    fraction_baseline: float
    fraction_treatment: float


def judge(
    floor: Estimate,
    ceiling: Estimate,
    baseline: Estimate,
    treatment: Estimate,
    *,
    baseline_name: str = "SGD",
    treatment_name: str = "SAM",
    feature: str = "the hard feature",
    paired: Estimate | None = None,
) -> Verdict:
    """The hypothesis "``treatment`` raises ``feature``'s probe accuracy over ``baseline``", judged.

    Testable only when ceiling − floor > ``RANGE_SE`` × the larger probe SE; then it reproduces
    when the difference exceeds ``DIFF_SE`` SEs of the difference: the per-seed ``paired``
    difference when given (same seeds, same initialisation and data order), else the difference
    of the two means with their SEs added in quadrature.
    """
    f_base = fraction_of_range(baseline.mean, floor.mean, ceiling.mean)
    f_treat = fraction_of_range(treatment.mean, floor.mean, ceiling.mean)
    span = ceiling.mean - floor.mean
    refs = f"untrained floor {floor.mean:.3f}, hard-only ceiling {ceiling.mean:.3f}"
    if not is_testable(floor, ceiling, [baseline, treatment]):
        se = max(baseline.se, treatment.se)
        noise = "unknown" if math.isnan(se) else f"{se:.3f}"
        sentence = (
            f"The range between the {refs} is {span:+.3f}, not above {RANGE_SE:g} probe SEs "
            f"(SE {noise}), so these runs cannot test whether {treatment_name} raises {feature}'s "
            f"probe accuracy ({baseline_name} {baseline.mean:.3f}, {treatment_name} {treatment.mean:.3f})."
        )
        return Verdict(CANNOT_TEST, sentence, f_base, f_treat)
    if paired is not None and not math.isnan(paired.se):
        diff, diff_se = paired.mean, paired.se
    else:
        diff = treatment.mean - baseline.mean
        diff_se = math.sqrt(baseline.se**2 + treatment.se**2)
    kind = "paired" if paired is not None and not math.isnan(paired.se) else "unpaired"
    where = (
        f"{_pct(f_base)} vs {_pct(f_treat)} of the range ({refs}; "
        f"{baseline_name} {baseline.mean:.3f}, {treatment_name} {treatment.mean:.3f})"
    )
    if diff > DIFF_SE * diff_se:
        status = REPRODUCES
        sentence = (
            f"{treatment_name} raises {feature}'s probe accuracy by {diff:.3f} "
            f"({diff / diff_se:.1f} SE of the {kind} difference): {where}."
        )
    else:
        status = DOES_NOT_REPRODUCE
        how = "lowers" if diff < -DIFF_SE * diff_se else "does not measurably change"
        sentence = (
            f"{treatment_name} {how} {feature}'s probe accuracy ({kind} difference {diff:+.3f}, "
            f"SE {diff_se:.3f}): {where}."
        )
    return Verdict(status, sentence, f_base, f_treat)


def _pct(fraction: float) -> str:
    return "n/a" if math.isnan(fraction) else f"{100 * fraction:.0f}%"

"""Floor and ceiling runs in a report: which runs they are, and the headroom table and verdicts.

A run is a reference when

* its recorded config carries ``headroom: floor`` — the untrained network, probed (written by
  :mod:`samlens.reproduce.headroom`), or
* it was trained with ``data.options.shuffle_easy: true`` — the easy block shuffled across
  training examples, so only the hard feature predicts the label (the ceiling).

Everything else is a treatment. Each treatment group is placed in the range between the floor
and the ceiling of the same setting (the same values of every varying key other than the
reference, the optimizer and its radius), and each perturbing optimizer is judged against the
plain one by :func:`samlens.report.verdict.judge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from samlens._optional import require

with require("report"):
    import pandas as pd

from samlens.report.load import Run, load_runs, scalar_metrics
from samlens.report.paired import FAILED_FIT_MARGIN, SEED_KEY, TRAIN_LOSS, failed_fit, paired_delta
from samlens.report.roles import CEILING, FLOOR, HARD_FEATURE, ROLE_KEY
from samlens.report.tables import PLAIN_OPTIMIZERS, finished, group_runs, varying_keys
from samlens.report.verdict import CANNOT_TEST, Estimate, Verdict, estimate, judge

#: The hard feature is the label attribute of every stand-in.
FRACTION = "fraction_of_range"


def hard_estimate(runs: Sequence[Run], feature: str = HARD_FEATURE) -> Estimate | None:
    """Mean ± SE over seeds of ``feature`` (one seed: binomial SE on its ``n_test``)."""
    done = [scalar_metrics(r.final) for r in finished(runs)]
    values = [m[feature] for m in done if feature in m]
    if not values:
        return None
    return estimate(values, [m.get("n_test", 0.0) for m in done if feature in m])


@dataclass(frozen=True)
class Row:
    """One treatment group placed between its floor and ceiling."""

    label: str
    optimizer: str
    probe: Estimate
    fraction: float
    fraction_se: float
    verdict: Verdict | None  # None for the plain (baseline) optimizer
    group: Any = None  # the samlens.report.tables.Group the row summarises


@dataclass(frozen=True)
class Headroom:
    """The references and rows of one setting."""

    context: str
    floor: Estimate
    ceiling: Estimate
    rows: list[Row]


def _context(group: Any, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(repr(v) for k, v in zip(keys, group.key) if k != ROLE_KEY and not k.startswith("optim."))


def _context_label(group: Any, keys: Sequence[str]) -> str:
    parts = [f"{k}={v}" for k, v in zip(keys, group.key) if k != ROLE_KEY and not k.startswith("optim.")]
    return ", ".join(parts)


def _role_of(group: Any, keys: Sequence[str]) -> str | None:
    return group.key[list(keys).index(ROLE_KEY)] if ROLE_KEY in keys else None


def short_name(group: Any, keys: Sequence[str]) -> str:
    """``SGD``, ``SAM ρ=0.05``: the optimizer, its radius and any other optimizer key that varies."""
    cfg = group.runs[0].config
    name = str(cfg.get("optim.name")).upper()
    parts = [name if cfg.get("optim.name") in PLAIN_OPTIMIZERS else f"{name} ρ={cfg.get('optim.rho')}"]
    parts += [
        f"{k}={v}"
        for k, v in zip(keys, group.key)
        if k.startswith("optim.") and k not in ("optim.name", "optim.rho")
    ]
    return ", ".join(parts)


def analyse(groups: Sequence[Any], keys: Sequence[str]) -> list[Headroom]:
    """One :class:`Headroom` per setting that has both a floor and a ceiling with results."""

    def label(group: Any) -> str:
        return short_name(group, keys)

    if ROLE_KEY not in keys:
        return []
    by_context: dict[tuple[str, ...], dict[str, list[Any]]] = {}
    for group in groups:
        slot = by_context.setdefault(_context(group, keys), {"floor": [], "ceiling": [], "rest": []})
        kind = {FLOOR: "floor", CEILING: "ceiling"}.get(_role_of(group, keys) or "", "rest")
        slot[kind].append(group)
    out = []
    for slot in by_context.values():
        if not slot["floor"] or not slot["ceiling"] or not slot["rest"]:
            continue
        floor = hard_estimate([r for g in slot["floor"] for r in g.runs])
        ceiling = hard_estimate([r for g in slot["ceiling"] for r in g.runs])
        if floor is None or ceiling is None:
            continue
        treated = [(g, hard_estimate(g.runs)) for g in slot["rest"]]
        treated = [(g, e) for g, e in treated if e is not None]
        baseline = next(((g, e) for g, e in treated if _optimizer(g) in PLAIN_OPTIMIZERS), None)
        span = ceiling.mean - floor.mean
        rows = []
        for group, est in treated:
            verdict = None
            if baseline is not None and group is not baseline[0]:
                est, verdict = _paired_verdict(floor, ceiling, baseline[0], group, est, label)
            fraction = (est.mean - floor.mean) / span if span > 0 else float("nan")
            fraction_se = est.se / span if span > 0 else float("nan")
            rows.append(Row(label(group), _optimizer(group), est, fraction, fraction_se, verdict, group))
        out.append(Headroom(_context_label(slot["rest"][0], keys), floor, ceiling, rows))
    return out


def _per_seed(runs: Sequence[Run], key: str) -> dict[Any, float]:
    out = {}
    for run in finished(runs):
        value = scalar_metrics(run.final).get(key)
        if value is not None:
            out[run.config.get(SEED_KEY)] = value
    return out


def _paired_verdict(
    floor: Estimate, ceiling: Estimate, baseline: Any, group: Any, est: Estimate, label: Any
) -> tuple[Estimate, Verdict]:
    """The verdict on ``group`` against the baseline group, as the paired tables judge it.

    Runs that failed to fit (``samlens.report.paired.failed_fit`` against their seed's baseline)
    are left out of the estimate; with two or more seeds in common the difference is the paired
    per-seed one (same initialisation and data order), else the unpaired difference.
    """
    base_loss = _per_seed(baseline.runs, TRAIN_LOSS)
    fitted = [
        r
        for r in finished(group.runs)
        if not failed_fit(_raw(r, TRAIN_LOSS), base_loss.get(r.config.get(SEED_KEY)))
    ]
    name, base_name = label(group), label(baseline)
    kept = hard_estimate(fitted)
    if kept is None:
        sentence = (
            f"every {name} run failed to fit (final train loss more than {FAILED_FIT_MARGIN:g} nats "
            f"above its {base_name} pair's), so there is nothing to compare."
        )
        return est, Verdict(CANNOT_TEST, sentence, float("nan"), float("nan"))
    base_est = hard_estimate(baseline.runs)
    assert base_est is not None
    paired = paired_delta(_per_seed(baseline.runs, HARD_FEATURE), _per_seed(fitted, HARD_FEATURE))
    delta = paired.delta if paired.delta.n >= 2 else None
    return kept, judge(
        floor, ceiling, base_est, kept, baseline_name=base_name, treatment_name=name, paired=delta
    )


def _raw(run: Run, key: str) -> float | None:
    value = run.final.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _optimizer(group: Any) -> str:
    return str(group.runs[0].config.get("optim.name"))


def summary_rows(found: Sequence[Headroom], keys: Sequence[str]) -> pd.DataFrame:
    """``fraction_of_range`` rows in the layout of :func:`samlens.report.tables.summarize`."""
    rows = []
    for headroom in found:
        for row in headroom.rows:
            entry: dict[str, Any] = dict(zip(keys, row.group.key))
            entry.update(
                group=row.group.label(keys),
                metric=FRACTION,
                mean=row.fraction,
                se=row.fraction_se,
                n=row.probe.n,
            )
            rows.append(entry)
    return pd.DataFrame(rows, columns=[*keys, "group", "metric", "mean", "se", "n"])


def _est(value: Estimate) -> str:
    return f"{value} (n={value.n})" if value.n > 1 else f"{value} (one seed, binomial SE)"


def _cell(fraction: float, se: float) -> str:
    if fraction != fraction:  # NaN
        return "n/a (no range)"
    if se != se:
        return f"{100 * fraction:.0f}%"
    return f"{100 * fraction:.0f}% ± {100 * se:.0f}%"


def blocks(found: Sequence[Headroom]) -> list[tuple[Any, ...]]:
    """Report blocks: per setting a table of floor, ceiling and treatments, then the verdicts."""
    if not found:
        return []
    out: list[tuple[Any, ...]] = [
        ("h", 3, "Headroom: the hard feature between the untrained floor and the hard-only ceiling"),
        (
            "p",
            "floor = the same architecture and initialisation, untrained, probed the same way; "
            "ceiling = the same training with the easy block shuffled across training examples "
            "(only the hard feature predicts the label); fraction of range = (probe − floor) / "
            "(ceiling − floor). SE over seeds, or the binomial SE of the probe test set for one seed.",
        ),
    ]
    for headroom in found:
        if headroom.context:
            out.append(("p", f"Setting: {headroom.context}."))
        table = [
            ["untrained (floor)", _est(headroom.floor), "0%"],
            ["hard-only (ceiling)", _est(headroom.ceiling), "100%"],
            *[[r.label, _est(r.probe), _cell(r.fraction, r.fraction_se)] for r in headroom.rows],
        ]
        out.append(("table", ["setting", f"{HARD_FEATURE} (hard)", "fraction of range"], table))
        for row in headroom.rows:
            if row.verdict is not None:
                out.append(("p", f"**{row.verdict.status}** ({row.label}): {row.verdict.sentence}"))
    return out


def verdict_lines(path: Any) -> list[str]:
    """The headroom verdicts of the runs under ``path``, one line each (for console output)."""
    _, runs = load_runs(path)
    keys = varying_keys(runs)
    lines = []
    for item in analyse(group_runs(runs, keys), keys):
        for row in item.rows:
            if row.verdict is not None:
                lines.append(f"{row.verdict.status}: {row.verdict.sentence}")
    return lines

"""Paired comparison of every optimizer with SGD, per setting and per ρ, seed by seed.

Runs with the same ``train.seed`` share their initialisation and data order (the runner derives
both from the config's seed), so the effect of an optimizer is measured best by the per-seed
differences ``Δ_s = probe(optimizer, s) − probe(SGD, s)``: their mean, the SE of those
differences (std with ddof 1 / √n) and how many are positive. A setting is every varying key
other than the optimizer, its radius, the seed and the floor/ceiling mark; each setting's
untrained floor and hard-only ceiling place every row as a fraction of the range.

A run **failed to fit** when its final train loss exceeds the paired SGD run's by more than
:data:`FAILED_FIT_MARGIN` nats (with no SGD pair: when it exceeds :data:`FAILED_FIT_LOSS`). Such a
run is marked in the table and left out of every mean and every Δ: too large a radius stops
training, and averaging a broken network into "SAM at ρ" would mix two different questions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from samlens.report.load import Run, scalar_metrics
from samlens.report.roles import CEILING, FLOOR, HARD_FEATURE, ROLE_KEY, role
from samlens.report.tables import OPTIM_KEY, PLAIN_OPTIMIZERS, RHO_KEY, finished, varying_keys
from samlens.report.verdict import Estimate, estimate

EASY_FEATURE = "probe_acc_other"
TRAIN_LOSS = "train_loss"
SEED_KEY = "train.seed"
#: Nats of final train loss above the paired SGD run's that mark a run as failed to fit. SGD ends
#: the stand-ins' 10-epoch recipe near 0.05; SAM at ρ 1.0, which stops learning, near 1.3.
FAILED_FIT_MARGIN = 0.5
#: Without an SGD pair: the final train loss above which a run failed to fit (ln 2 ≈ 0.69 is a
#: coin flip between two classes, already far from a network that learned its training set).
FAILED_FIT_LOSS = 1.0


# One mean ± SE of per-seed values for every report table (a single value has SE NaN here: the
# paired tables never borrow the binomial SE that headroom verdicts use for one seed).
Stat = Estimate


def stat(values: Sequence[float]) -> Stat:
    return estimate(values)


@dataclass(frozen=True)
class Paired:
    """Per-seed differences treatment − baseline on the seeds both have."""

    delta: Stat
    positive: int
    seeds: tuple[Any, ...]


def paired_delta(baseline: dict[Any, float], treatment: dict[Any, float]) -> Paired:
    """Mean ± SE of ``treatment[s] − baseline[s]`` over the seeds in both, and how many are > 0."""
    seeds = tuple(sorted((s for s in treatment if s in baseline), key=repr))
    diffs = [treatment[s] - baseline[s] for s in seeds]
    return Paired(stat(diffs), sum(d > 0 for d in diffs), seeds)


def failed_fit(loss: float | None, baseline_loss: float | None) -> bool:
    """Whether a run with final train ``loss`` failed to fit (see the module docstring)."""
    if loss is None or not math.isfinite(loss):
        return loss is not None  # a NaN/inf loss diverged; no recorded loss cannot be judged
    if baseline_loss is not None and math.isfinite(baseline_loss):
        return loss > baseline_loss + FAILED_FIT_MARGIN
    return loss > FAILED_FIT_LOSS


@dataclass(frozen=True)
class Row:
    """One optimizer (at one ρ) of one setting."""

    label: str
    optimizer: str
    rho: float | None
    hard: Stat
    easy: Stat
    train_loss: Stat
    delta: Paired | None  # None for SGD and the references
    fraction: float
    runs: int  # finished runs, fitted or not
    failed: tuple[Any, ...] = ()  # seeds of the runs that failed to fit
    kind: str = "treatment"  # "floor", "ceiling", "baseline" or "treatment"


@dataclass
class Setting:
    label: str
    rows: list[Row] = field(default_factory=list)

    def row(self, kind: str) -> Row | None:
        return next((r for r in self.rows if r.kind == kind), None)


def _metric(run: Run, key: str) -> float | None:
    return scalar_metrics(run.final).get(key)


def _raw_loss(run: Run) -> float | None:
    """The final train loss, NaN or inf included (a diverged run must not read as unjudged)."""
    value = run.final.get(TRAIN_LOSS)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _by_seed(runs: Sequence[Run], key: str) -> dict[Any, float]:
    out = {}
    for run in runs:
        value = _metric(run, key)
        if value is not None:
            out[run.config.get(SEED_KEY)] = value
    return out


def _label(optimizer: str, rho: float | None) -> str:
    return optimizer.upper() if rho is None else f"{optimizer.upper()} ρ={rho:g}"


def setting_keys(runs: Sequence[Run]) -> list[str]:
    """Varying keys that define a setting: all but the optimizer's, the seed and the reference."""
    return [k for k in varying_keys(runs) if not k.startswith("optim.") and k != "reference"]


def analyse(runs: Sequence[Run]) -> list[Setting]:
    """Settings that have an SGD baseline, each with its floor, ceiling and paired rows."""
    done = finished(runs)
    keys = setting_keys(done)
    slots: dict[tuple[str, ...], dict[tuple[str, Any], list[Run]]] = {}
    labels: dict[tuple[str, ...], str] = {}
    for run in done:
        ctx = tuple(repr(run.config.get(k)) for k in keys)
        labels[ctx] = ", ".join(f"{k}={run.config.get(k)}" for k in keys)
        ref = role(run.config)
        optimizer = str(run.config.get(OPTIM_KEY))
        if ref is not None:
            slot = ("floor" if ref == FLOOR else "ceiling", None)
        elif optimizer in PLAIN_OPTIMIZERS:
            slot = ("baseline", None)
        else:
            rho = run.config.get(RHO_KEY)
            slot = (optimizer, None if rho is None else float(rho))
        slots.setdefault(ctx, {}).setdefault(slot, []).append(run)
    out = []
    for ctx, groups in slots.items():
        if ("baseline", None) not in groups:
            continue
        out.append(_setting(labels[ctx], groups))
    return out


def _setting(label: str, groups: dict[tuple[str, Any], list[Run]]) -> Setting:
    base_runs = groups[("baseline", None)]
    base_hard = _by_seed(base_runs, HARD_FEATURE)
    base_loss = _by_seed(base_runs, TRAIN_LOSS)
    floor = stat(list(_by_seed(groups.get(("floor", None), []), HARD_FEATURE).values()))
    ceiling = stat(list(_by_seed(groups.get(("ceiling", None), []), HARD_FEATURE).values()))
    span = ceiling.mean - floor.mean if floor.n and ceiling.n else float("nan")

    def row(name: str, kind: str, rho: float | None, members: list[Run]) -> Row:
        optimizer = str(members[0].config.get(OPTIM_KEY)) if members else kind
        fitted, failed = [], []
        for run in members:
            seed = run.config.get(SEED_KEY)
            judged = kind == "treatment" and failed_fit(_raw_loss(run), base_loss.get(seed))
            (failed if judged else fitted).append(run)
        hard = _by_seed(fitted, HARD_FEATURE)
        h = stat(list(hard.values()))
        fraction = (h.mean - floor.mean) / span if span > 0 else float("nan")
        delta = paired_delta(base_hard, hard) if kind == "treatment" else None
        return Row(
            label=name,
            optimizer=optimizer,
            rho=rho,
            hard=h,
            easy=stat(list(_by_seed(fitted, EASY_FEATURE).values())),
            train_loss=stat(list(_by_seed(fitted, TRAIN_LOSS).values())),
            delta=delta,
            fraction=fraction,
            runs=len(members),
            failed=tuple(sorted((r.config.get(SEED_KEY) for r in failed), key=repr)),
            kind=kind,
        )

    setting = Setting(label)
    for kind, name in (("floor", "untrained (floor)"), ("ceiling", "hard-only (ceiling)")):
        if (kind, None) in groups:
            setting.rows.append(row(name, kind, None, groups[(kind, None)]))
    baseline_name = str(base_runs[0].config.get(OPTIM_KEY)).upper()
    setting.rows.append(row(baseline_name, "baseline", None, base_runs))
    treated = sorted((k for k in groups if k[0] not in ("floor", "ceiling", "baseline")), key=_order)
    for optimizer, rho in treated:
        setting.rows.append(row(_label(optimizer, rho), "treatment", rho, groups[(optimizer, rho)]))
    return setting


def _order(key: tuple[str, Any]) -> tuple[int, str, float]:
    optimizer, rho = key
    return (optimizer != "sam", optimizer, -1.0 if rho is None else rho)


HEADER = [
    "run",
    "ρ",
    "hard probe",
    "easy probe",
    "Δ hard vs SGD (paired)",
    "Δ > 0",
    "fraction of range",
    "final train loss",
    "fit",
]


def table_rows(setting: Setting) -> list[list[str]]:
    """The report table of one setting, in :data:`HEADER`'s columns."""
    rows = []
    for r in setting.rows:
        delta = "–" if r.delta is None else _signed(r.delta.delta)
        positive = "–" if r.delta is None else f"{r.delta.positive}/{r.delta.delta.n}"
        fraction = "n/a" if r.fraction != r.fraction else f"{100 * r.fraction:.0f}%"
        fit = f"{r.runs - len(r.failed)}/{r.runs}"
        if r.failed:
            fit += " (failed to fit: seed " + ", ".join(str(s) for s in r.failed) + "; excluded)"
        rho = "–" if r.rho is None else f"{r.rho:g}"
        loss = "–" if r.kind == "floor" else str(r.train_loss)
        rows.append([r.label, rho, str(r.hard), str(r.easy), delta, positive, fraction, loss, fit])
    return rows


def _signed(s: Stat) -> str:
    if s.n == 0:
        return "–"
    return f"{s.mean:+.3f}" if math.isnan(s.se) else f"{s.mean:+.3f} ± {s.se:.3f}"


def blocks(settings: Sequence[Setting]) -> list[tuple[Any, ...]]:
    """Report blocks: one paired table per setting."""
    if not settings:
        return []
    out: list[tuple[Any, ...]] = [
        ("h", 3, "Paired comparison with SGD, per ρ"),
        (
            "p",
            "hard / easy probe = balanced probe accuracy of the hard (label) and easy (other) feature, "
            "mean ± SE over seeds; Δ = mean ± SE of the per-seed differences from SGD (same seed: same "
            "initialisation and data order), Δ > 0 = seeds where the optimizer beat SGD; fraction of "
            "range = (hard − floor) / (ceiling − floor); fit = runs that fitted / finished runs. A run "
            f"whose final train loss exceeds its SGD pair's by more than {FAILED_FIT_MARGIN:g} nats "
            "failed to fit: it is marked and left out of every mean and Δ.",
        ),
    ]
    for setting in settings:
        if setting.label:
            out.append(("p", f"Setting: {setting.label}."))
        out.append(("table", HEADER, table_rows(setting)))
    return out


def summary_rows(settings: Sequence[Setting]) -> list[dict[str, Any]]:
    """Rows for summary.csv: per setting and row, Δ, seeds positive, failed fits."""
    rows: list[dict[str, Any]] = []
    for setting in settings:
        for r in setting.rows:
            common = {
                ROLE_KEY: {"floor": FLOOR, "ceiling": CEILING}.get(r.kind, ""),
                OPTIM_KEY: r.optimizer,
                RHO_KEY: "" if r.rho is None else r.rho,
                "group": f"{setting.label} | {r.label}" if setting.label else r.label,
            }
            if r.delta is not None:
                d = r.delta.delta
                rows.append(
                    {**common, "metric": f"paired_delta_{HARD_FEATURE}", "mean": d.mean, "se": d.se, "n": d.n}
                )
                rows.append(
                    {
                        **common,
                        "metric": "paired_positive",
                        "mean": r.delta.positive,
                        "se": math.nan,
                        "n": d.n,
                    }
                )
            rows.append(
                {**common, "metric": "failed_fit", "mean": len(r.failed), "se": math.nan, "n": r.runs}
            )
    return rows

"""Group runs that differ only by seed and aggregate their metrics as mean ± SE (n)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from samlens._optional import require

with require("report"):
    import pandas as pd

from samlens.optim.wrapper import BASE_OPTIMIZERS
from samlens.probe.metrics import mean_se
from samlens.report.load import Run, scalar_metrics
from samlens.report.roles import ROLE_KEY, role_config

OPTIM_KEY = "optim.name"
RHO_KEY = "optim.rho"
# Keys that label or locate a run without changing what it computes.
_IGNORED = {"name", "data.root"}
# Optimizers that take no perturbation radius: their ``optim.rho`` is inert and must not split groups.
# The base optimizers take no radius: their runs are the ρ = 0 baselines of every table.
PLAIN_OPTIMIZERS = BASE_OPTIMIZERS

GROUP_ACC_PREFIX = "group_acc/"
PROBE_PREFIX = "probe_acc_"
ID_METRICS = ("test_acc", "val_acc", "train_acc")
GROUP_METRICS = ("worst_group_acc", "train_weighted_mean_acc", "mean_acc", "balanced_acc")


def is_seed_key(key: str) -> bool:
    """Seed keys are what a group averages over."""
    return "seed" in key.rsplit(".", 1)[-1]


def effective_config(run: Run) -> dict[str, Any]:
    """The config as far as results depend on it: inert ρ of plain optimizers blanked.

    Floor and ceiling runs (``samlens.report.roles``) get a ``reference`` key in place of
    the keys that mark them, so they form their own groups with a readable label.
    """
    cfg = role_config(run.config)
    if cfg.get(OPTIM_KEY) in PLAIN_OPTIMIZERS and RHO_KEY in cfg:
        cfg[RHO_KEY] = None
    return cfg


def varying_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys (other than seeds and labels) whose value differs between runs, in config order."""
    configs = [effective_config(r) for r in runs]
    keys: list[str] = []
    for cfg in configs:
        keys.extend(k for k in cfg if k not in keys)
    return [
        k
        for k in keys
        if k not in _IGNORED and not is_seed_key(k) and len({repr(c.get(k)) for c in configs}) > 1
    ]


def common_config(runs: Sequence[Run]) -> dict[str, Any]:
    """Config entries shared by every run."""
    configs = [r.config for r in runs]
    if not configs:
        return {}
    first = configs[0]
    return {k: v for k, v in first.items() if all(k in c and repr(c[k]) == repr(v) for c in configs[1:])}


@dataclass(frozen=True)
class Group:
    """Runs with identical settings apart from their seeds."""

    key: tuple[Any, ...]  # values of the varying keys
    runs: tuple[Run, ...]

    def label(self, keys: Sequence[str]) -> str:
        if not keys:
            return "all runs"
        parts = []
        for k, v in zip(keys, self.key):
            if k == ROLE_KEY:
                if v is not None:
                    parts.append(str(v))
                continue
            parts.append(f"{_short(k)}={_fmt_value(v)}")
        return ", ".join(parts)


def _short(key: str) -> str:
    return {OPTIM_KEY: "optim", RHO_KEY: "ρ"}.get(key, key)


def _fmt_value(value: Any) -> str:
    return "—" if value is None else str(value)


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> list[Group]:
    """Runs grouped by the values of ``keys``, groups sorted by those values (seeds ignored)."""
    groups: dict[tuple[str, ...], tuple[tuple[Any, ...], list[Run]]] = {}
    for run in runs:
        cfg = effective_config(run)
        values = tuple(cfg.get(k) for k in keys)
        groups.setdefault(tuple(repr(v) for v in values), (values, []))[1].append(run)
    ordered = sorted(groups.values(), key=lambda item: _sort_key(keys, item[0]))
    return [Group(values, tuple(members)) for values, members in ordered]


def _sort_key(keys: Sequence[str], values: Sequence[Any]) -> tuple[Any, ...]:
    """Baselines (plain optimizers) first, then by value; None before numbers before text."""
    out: list[Any] = []
    for key, value in zip(keys, values):
        if key == OPTIM_KEY:
            out.append((0 if value in PLAIN_OPTIMIZERS else 1, 0, str(value)))
        elif value is None:
            out.append((0, 0, ""))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((1, value, ""))
        else:
            out.append((2, 0, str(value)))
    return tuple(out)


def finished(runs: Sequence[Run]) -> list[Run]:
    """Runs whose final metrics count: a final event and not marked failed."""
    return [r for r in runs if r.final and r.status != "failed"]


def metric_order(names: Sequence[str]) -> list[str]:
    """Probe accuracies, then ID accuracy, group metrics, per-group accuracies, then the rest."""

    def rank(name: str) -> tuple[int, int, str]:
        if name.startswith(PROBE_PREFIX):
            return (0, 0, name)
        if name in ID_METRICS:
            return (1, ID_METRICS.index(name), name)
        if name in GROUP_METRICS:
            return (2, GROUP_METRICS.index(name), name)
        if name.startswith(GROUP_ACC_PREFIX):
            tail = name[len(GROUP_ACC_PREFIX) :]
            return (3, int(tail) if tail.isdigit() else 0, tail)
        return (4, 0, name)

    return sorted(set(names), key=rank)


def summarize(groups: Sequence[Group], keys: Sequence[str]) -> pd.DataFrame:
    """Long table: one row per (group, metric) with mean, se, n over the group's finished seeds."""
    rows = []
    for group in groups:
        runs = finished(group.runs)
        per_metric: dict[str, list[float]] = {}
        for run in runs:
            for name, value in scalar_metrics(run.final).items():
                per_metric.setdefault(name, []).append(value)
        for name in metric_order(list(per_metric)):
            mean, se, n = mean_se(per_metric[name])
            row = {k: v for k, v in zip(keys, group.key)}
            row.update(group=group.label(keys), metric=name, mean=mean, se=se, n=n)
            rows.append(row)
    columns = [*keys, "group", "metric", "mean", "se", "n"]
    return pd.DataFrame(rows, columns=columns)


def format_cell(mean: float, se: float, n: int, digits: int = 4) -> str:
    """``0.9123 ± 0.0040 (n=5)``; a single seed has no SE and shows only its value."""
    if n <= 1 or math.isnan(se):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {se:.{digits}f} (n={n})"


def wide_table(summary: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Rows = groups, columns = the requested metrics present in ``summary``; cells formatted."""
    present = [m for m in metrics if m in set(summary["metric"])]
    if not present:
        return [], []
    rows: list[list[str]] = []
    for label, part in summary.groupby("group", sort=False):
        by_metric = {r.metric: format_cell(r.mean, r.se, int(r.n)) for r in part.itertuples()}
        rows.append([str(label), *(by_metric.get(m, "—") for m in present)])
    return ["setting", *present], rows


def long_table(summary: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Rows = metrics, columns = groups (narrow when there are many metrics and few groups)."""
    present = [m for m in metrics if m in set(summary["metric"])]
    if not present:
        return [], []
    labels = list(dict.fromkeys(summary["group"]))
    cells = {(r.metric, r.group): format_cell(r.mean, r.se, int(r.n)) for r in summary.itertuples()}
    rows = [[m, *(cells.get((m, g), "—") for g in labels)] for m in present]
    return ["metric", *labels], rows

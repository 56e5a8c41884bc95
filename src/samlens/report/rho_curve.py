"""Figures of the paired sweep: hard-probe accuracy vs ρ, and SAM − SGD over training.

Both are built from :mod:`samlens.report.paired` (runs that failed to fit are left out) and
return matplotlib ``Figure`` objects made without pyplot's global state, so no backend is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from samlens._optional import require

with require("report"):
    import numpy as np
    from matplotlib.figure import Figure

from samlens.report.load import Run, scalar_metrics
from samlens.report.paired import SEED_KEY, Setting, failed_fit, setting_keys, stat
from samlens.report.roles import HARD_FEATURE, role
from samlens.report.tables import OPTIM_KEY, PLAIN_OPTIMIZERS, RHO_KEY, finished


def _band(ax: Any, row: Any, color: str, label: str) -> None:
    se = 0.0 if math.isnan(row.hard.se) else row.hard.se
    ax.axhspan(row.hard.mean - se, row.hard.mean + se, color=color, alpha=0.18, lw=0)
    ax.axhline(row.hard.mean, color=color, ls="--", lw=1.2, label=f"{label} {row.hard.mean:.3f}")


def rho_curve(settings: Sequence[Setting]) -> Figure | None:
    """Hard-probe accuracy (mean ± SE) of SAM vs ρ on a log axis, one panel per setting, with the
    floor and ceiling as bands, SGD as a line and the other perturbing optimizers as points."""
    drawable = [s for s in settings if len([r for r in s.rows if r.optimizer == "sam" and r.hard.n]) > 1]
    if not drawable:
        return None
    fig = Figure(figsize=(5.5 * len(drawable), 4.2), layout="constrained")
    axes = fig.subplots(1, len(drawable), squeeze=False)[0]
    for ax, setting in zip(axes, drawable):
        for kind, color, name in (
            ("floor", "0.5", "floor"),
            ("ceiling", "tab:green", "ceiling"),
            ("baseline", "tab:blue", "SGD"),
        ):
            row = setting.row(kind)
            if row is not None and row.hard.n:
                _band(ax, row, color, name)
        sam = sorted((r for r in setting.rows if r.optimizer == "sam" and r.hard.n), key=lambda r: r.rho)
        x = np.array([r.rho for r in sam])
        y = np.array([r.hard.mean for r in sam])
        e = np.array([0.0 if math.isnan(r.hard.se) else r.hard.se for r in sam])
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color="tab:red", label="SAM")
        for r in sam:
            if r.failed:
                ax.annotate(
                    f"{len(r.failed)} failed",
                    (r.rho, r.hard.mean),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(4, -10),
                )
        markers = iter("s^vDP")
        for r in setting.rows:
            if r.kind == "treatment" and r.optimizer != "sam" and r.rho and r.hard.n:
                se = 0.0 if math.isnan(r.hard.se) else r.hard.se
                ax.errorbar(
                    [r.rho],
                    [r.hard.mean],
                    yerr=[se],
                    marker=next(markers, "o"),
                    ls="none",
                    capsize=3,
                    label=r.label,
                )
        ax.set_xscale("log")
        ax.set_xlabel("ρ (log scale)")
        ax.set_ylabel("hard-feature probe accuracy")
        ax.set_title(setting.label or "hard feature vs ρ", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Hard-feature probe vs ρ (mean ± SE over seeds; failed fits excluded)")
    return fig


def _curves(runs: Sequence[Run], pair: Any) -> dict[Any, dict[float, float]]:
    out: dict[Any, dict[float, float]] = {}
    for run in runs:
        for event in run.events:
            if event.get("event") == "probe" and event.get("epoch") is not None:
                value = scalar_metrics(event.get("metrics") or {}).get(HARD_FEATURE)
                if value is not None:
                    out.setdefault(pair(run), {})[float(event["epoch"])] = value
    return out


def delta_curves(runs: Sequence[Run]) -> Figure | None:
    """Paired Δ (perturbing optimizer − SGD, same seed) of the hard-feature probe per epoch,
    mean ± SE over seeds: where during training the advantage is largest."""
    done = [r for r in finished(runs) if role(r.config) is None]
    base = [r for r in done if r.config.get(OPTIM_KEY) in PLAIN_OPTIMIZERS]
    if not base:
        return None
    keys = setting_keys(done)

    def pair(run: Run) -> tuple[str, ...]:
        # Same setting and seed: the runs that share initialisation and data order.
        return tuple(repr(run.config.get(k)) for k in [*keys, SEED_KEY])

    base_curves = _curves(base, pair)
    base_loss = {pair(r): scalar_metrics(r.final).get("train_loss") for r in base}
    series: dict[str, dict[float, list[float]]] = {}
    for run in done:
        optimizer = run.config.get(OPTIM_KEY)
        if optimizer in PLAIN_OPTIMIZERS:
            continue
        seed = pair(run)
        if failed_fit(scalar_metrics(run.final).get("train_loss"), base_loss.get(seed)):
            continue
        where = ", ".join(f"{k}={run.config.get(k)}" for k in keys)
        label = f"{str(optimizer).upper()} ρ={run.config.get(RHO_KEY)}" + (f" ({where})" if where else "")
        for epoch, value in _curves([run], pair).get(seed, {}).items():
            if epoch in base_curves.get(seed, {}):
                series.setdefault(label, {}).setdefault(epoch, []).append(value - base_curves[seed][epoch])
    series = {k: v for k, v in series.items() if len(v) > 1}
    if not series:
        return None
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, by_epoch in sorted(series.items()):
        epochs = sorted(by_epoch)
        stats = [stat(by_epoch[e]) for e in epochs]
        mean = np.array([s.mean for s in stats])
        se = np.array([0.0 if math.isnan(s.se) else s.se for s in stats])
        (line,) = ax.plot(epochs, mean, marker=".", label=label)
        ax.fill_between(epochs, mean - se, mean + se, alpha=0.18, color=line.get_color())
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("Δ hard-feature probe vs SGD (same seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Paired advantage over training (mean ± SE over seeds)")
    return fig

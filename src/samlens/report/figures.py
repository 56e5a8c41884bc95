"""Report figures (matplotlib Figure objects, no pyplot): each function draws one figure or returns
None when the runs hold nothing to draw. Figures are saved as PNG and PDF by :func:`save`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samlens._optional import require

with require("report"):
    import matplotlib

# Figures are made as Figure objects, never through pyplot: writing a report sets no backend, so
# it works headless (CI, clusters) and leaves a notebook's backend alone.
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from samlens.probe.importance import gini, lorenz_curve  # noqa: E402
from samlens.probe.metrics import mean_se  # noqa: E402
from samlens.report.load import Run, scalar_metrics  # noqa: E402
from samlens.report.tables import (  # noqa: E402
    GROUP_ACC_PREFIX,
    OPTIM_KEY,
    PLAIN_OPTIMIZERS,
    PROBE_PREFIX,
    RHO_KEY,
    Group,
    finished,
    metric_order,
)

LAMBDA_KEYS = ("lambda", "lambda_phantom")


def _stats(values: Sequence[float]) -> tuple[float, float, int]:
    mean, se, n = mean_se(values)
    return mean, (0.0 if np.isnan(se) else se), n


def _feature(metric: str) -> str:
    return metric[len(PROBE_PREFIX) :]


def _probe_axis(ax: Any, xlabel: str, metric: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel("probe accuracy")
    ax.set_title(f"feature: {_feature(metric)}")
    ax.grid(alpha=0.3)


def _panels(count: int) -> tuple[Figure, list[Any]]:
    fig = Figure(figsize=(4.6 * count, 3.8), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)
    return fig, list(axes[0])


def _probe_metrics(runs: Sequence[Run]) -> list[str]:
    names = {m for r in finished(runs) for m in scalar_metrics(r.final) if m.startswith(PROBE_PREFIX)}
    return metric_order(list(names))


def _without(keys: Sequence[str], *drop: str) -> list[str]:
    return [k for k in keys if k not in drop]


def _setting(group: Group, keys: Sequence[str], shown: Sequence[str]) -> str:
    parts = [f"{k}={v}" for k, v in zip(keys, group.key) if k in shown]
    return ", ".join(parts)


def probe_vs_rho(groups: Sequence[Group], keys: Sequence[str]) -> Figure | None:
    """Probe accuracy per feature against ρ; plain optimizers (SGD) as a mean ± SE band."""
    runs = [r for g in groups for r in g.runs]
    metrics = _probe_metrics(runs)
    if not metrics or OPTIM_KEY not in (runs[0].config if runs else {}):
        return None
    rest = _without(keys, OPTIM_KEY, RHO_KEY)
    fig, axes = _panels(len(metrics))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    line_index: dict[str, int] = {}
    for ax, metric in zip(axes, metrics):
        lines: dict[str, list[tuple[float, float, float]]] = {}
        bands: list[tuple[str, float, float]] = []
        for group in groups:
            values = [r.final[metric] for r in finished(group.runs) if metric in scalar_metrics(r.final)]
            if not values:
                continue
            mean, se, _ = _stats(values)
            cfg = group.runs[0].config
            setting = _setting(group, keys, rest)
            optimizer = str(cfg.get(OPTIM_KEY))
            label = f"{optimizer} ({setting})" if setting else optimizer
            if optimizer in PLAIN_OPTIMIZERS or cfg.get(RHO_KEY) is None:
                bands.append((label, mean, se))
            else:
                lines.setdefault(label, []).append((float(cfg[RHO_KEY]), mean, se))
        if not any(len(points) > 1 for points in lines.values()):
            return None  # one ρ: a single point says nothing about ρ (the tables hold it)
        for label, mean, se in bands:
            color = colors[line_index.setdefault(label, len(line_index)) % len(colors)]
            ax.axhspan(mean - se, mean + se, color=color, alpha=0.2, lw=0)
            ax.axhline(mean, color=color, ls="--", lw=1.2, label=f"{label} (band: ± SE)")
        for label, points in lines.items():
            color = colors[line_index.setdefault(label, len(line_index)) % len(colors)]
            points.sort()
            x, y, e = (np.array(v) for v in zip(*points))
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=color, label=label)
        _probe_axis(ax, "ρ", metric)
    axes[0].legend(fontsize=8)
    fig.suptitle("Probe accuracy per feature vs ρ (mean ± SE over seeds)")
    return fig


def probe_curves(groups: Sequence[Group], keys: Sequence[str]) -> Figure | None:
    """Probe accuracy per feature over training (probe events by epoch), mean ± SE over seeds."""
    curves: dict[str, dict[str, dict[float, list[float]]]] = {}
    for group in groups:
        label = group.label(keys)
        for run in group.runs:
            if run.status == "failed":
                continue
            for event in run.events:
                if event.get("event") != "probe" or event.get("epoch") is None:
                    continue
                for metric, value in scalar_metrics(event.get("metrics") or {}).items():
                    if metric.startswith(PROBE_PREFIX):
                        by_epoch = curves.setdefault(metric, {}).setdefault(label, {})
                        by_epoch.setdefault(float(event["epoch"]), []).append(value)
    metrics = [m for m in metric_order(list(curves)) if any(len(c) > 1 for c in curves[m].values())]
    if not metrics:
        return None
    fig, axes = _panels(len(metrics))
    for ax, metric in zip(axes, metrics):
        for label, by_epoch in curves[metric].items():
            epochs = sorted(by_epoch)
            stats = np.array([_stats(by_epoch[e])[:2] for e in epochs])
            (line,) = ax.plot(epochs, stats[:, 0], marker=".", label=label)
            ax.fill_between(
                epochs,
                stats[:, 0] - stats[:, 1],
                stats[:, 0] + stats[:, 1],
                alpha=0.2,
                color=line.get_color(),
            )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _probe_axis(ax, "epoch", metric)
    axes[0].legend(fontsize=8)
    fig.suptitle("Feature quality over training (mean ± SE over seeds)")
    return fig


def group_accuracy(
    groups: Sequence[Group], keys: Sequence[str], names: Sequence[str] | None = None
) -> Figure | None:
    """Per-group test accuracy bars (mean ± SE over seeds), one bar per setting."""
    metrics = metric_order(
        [
            m
            for g in groups
            for r in finished(g.runs)
            for m in scalar_metrics(r.final)
            if m.startswith(GROUP_ACC_PREFIX)
        ]
    )
    if not metrics:
        return None
    fig = Figure(figsize=(max(5.0, 1.3 * len(metrics) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    shown = [g for g in groups if finished(g.runs)]
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(metrics))
    for i, group in enumerate(shown):
        stats = []
        for metric in metrics:
            values = [r.final[metric] for r in finished(group.runs) if metric in scalar_metrics(r.final)]
            stats.append(_stats(values)[:2] if values else (np.nan, 0.0))
        arr = np.array(stats)
        ax.bar(
            x + (i - (len(shown) - 1) / 2) * width,
            arr[:, 0],
            width,
            yerr=arr[:, 1],
            capsize=3,
            label=group.label(keys),
        )
    tick = [m[len(GROUP_ACC_PREFIX) :] for m in metrics]
    if names:
        tick = [names[int(t)] if t.isdigit() and int(t) < len(names) else t for t in tick]
    ax.set_xticks(x, tick, rotation=30 if len(tick) > 4 else 0, ha="right" if len(tick) > 4 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("group")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    ax.set_title("Per-group accuracy (mean ± SE over seeds)")
    return fig


def _last_lambda(run: Run, key: str) -> list[float] | None:
    for event in reversed(run.events):
        value = (event.get("metrics") or {}).get(key)
        if isinstance(value, list) and len(value) > 1:
            return [float(v) for v in value]
    return None


def lorenz(groups: Sequence[Group], keys: Sequence[str]) -> Figure | None:
    """Lorenz curves of the last recorded λ (and phantom λ̃) of each run, one panel per kind."""
    present = [k for k in LAMBDA_KEYS if any(_last_lambda(r, k) for g in groups for r in g.runs)]
    if not present:
        return None
    fig, axes = _panels(len(present))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes, present):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="equality")
        for i, group in enumerate(groups):
            for run in group.runs:
                lam = _last_lambda(run, key)
                if lam is None:
                    continue
                x, y = lorenz_curve(lam)
                label = f"{group.label(keys)}: Gini {gini(lam):.3f}"
                ax.plot(x, y, color=colors[i % len(colors)], lw=1.2, alpha=0.8, label=label)
        ax.set_xlabel("fraction of examples (λ ascending)")
        ax.set_ylabel("cumulative share of weight")
        ax.set_title("λ̃ (phantom)" if key == "lambda_phantom" else "λ")
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Importance-weight Lorenz curves (one line per seed; Gini = 1 − 2∫L)")
    return fig


def headroom(found: Sequence[Any]) -> Figure | None:
    """Hard-feature probe per optimizer as bars (mean ± SE), floor and ceiling as horizontal lines.

    ``found`` is :func:`samlens.report.headroom.analyse`'s output. Runs of the same seed are
    joined across the bars, since paired runs share their initialisation and data order.
    """
    from samlens.report.roles import HARD_FEATURE

    if not found:
        return None
    fig, axes = _panels(len(found))
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, item in zip(axes, found):
        x = np.arange(len(item.rows))
        means = [r.probe.mean for r in item.rows]
        ses = [0.0 if np.isnan(r.probe.se) else r.probe.se for r in item.rows]
        single = all(r.probe.n == 1 for r in item.rows)
        ax.bar(x, means, 0.6, yerr=ses, capsize=4, color=[colors[i % len(colors)] for i in x], alpha=0.8)
        for ref, est, style in (
            ("untrained (floor)", item.floor, ":"),
            ("hard-only (ceiling)", item.ceiling, "--"),
        ):
            ax.axhline(est.mean, color="black", ls=style, lw=1.3, label=f"{ref} {est.mean:.3f}")
            if not np.isnan(est.se):
                ax.axhspan(est.mean - est.se, est.mean + est.se, color="grey", alpha=0.15, lw=0)
        seeds: dict[str, list[tuple[int, float]]] = {}
        for i, row in enumerate(item.rows):
            for run in finished(row.group.runs):
                value = scalar_metrics(run.final).get(HARD_FEATURE)
                if value is not None:
                    seed = ",".join(str(v) for k, v in run.config.items() if "seed" in k.rsplit(".", 1)[-1])
                    seeds.setdefault(seed, []).append((i, value))
        if not single:
            for points in seeds.values():
                xs, ys = zip(*points)
                ax.plot(xs, ys, color="black", marker="o", ms=3, lw=0.6, alpha=0.5)
        low = min([item.floor.mean, *means]) - 0.05
        high = max([item.ceiling.mean, *means]) + 0.03
        ax.set_ylim(max(0.0, low), min(1.0, high))
        ax.set_xticks(x, [r.label for r in item.rows], rotation=20 if len(x) > 2 else 0)
        ax.set_ylabel("probe accuracy, hard feature")
        ax.set_title(item.context or "hard feature vs its floor and ceiling", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="lower right")
    what = (
        "error bars: binomial SE of the probe test set (one seed)"
        if all(r.probe.n == 1 for h in found for r in h.rows)
        else "mean ± SE over seeds; lines join runs of the same seed"
    )
    fig.suptitle(
        f"Hard-feature probe between the untrained floor and the hard-only ceiling\n({what})", fontsize=9
    )
    return fig


def save(fig: Figure, directory: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``."""
    paths = [directory / f"{stem}.png", directory / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    return paths

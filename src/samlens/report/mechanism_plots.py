"""Figures of the mechanism: Lorenz curves of importance weights and the toy study's curves.

Every figure is written as PNG and PDF (rendered without pyplot, so no display and no backend is needed), to a
temporary name first so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samlens._optional import require
from samlens.rundir import atomic_save

with require("report"):
    from matplotlib.figure import Figure  # no pyplot: no backend is set

from samlens.probe.importance import gini, lorenz_curve  # noqa: E402


def save_figure(fig: Any, path_stem: str | Path) -> list[Path]:
    """Save ``fig`` as ``<stem>.png`` and ``<stem>.pdf``; returns the two paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for ext in ("png", "pdf"):
        final = stem.with_suffix(f".{ext}")
        atomic_save(final, lambda fh, ext=ext: fig.savefig(fh, format=ext, dpi=150, bbox_inches="tight"))
        out.append(final)
    return out


def plot_lorenz(weights: Mapping[str, Sequence[float]], path_stem: str | Path, title: str = "") -> list[Path]:
    """Lorenz curves of several weight vectors, Gini coefficient in the legend."""
    fig = Figure(figsize=(4.2, 4))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="equality")
    for label, w in weights.items():
        p, shares = lorenz_curve(w)
        ax.plot(p, shares, label=f"{label} (Gini {gini(w):.3f})")
    ax.set_xlabel("fraction of examples (ascending λ)")
    ax.set_ylabel("fraction of total importance")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return save_figure(fig, path_stem)


def _band(ax: Any, x: np.ndarray, runs: np.ndarray, label: str) -> None:
    mean = runs.mean(0)
    se = runs.std(0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
    (line,) = ax.plot(x, mean, label=f"{label} (n={len(runs)})")
    ax.fill_between(x, mean - se, mean + se, color=line.get_color(), alpha=0.25)


def plot_toy(records: Sequence[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """The toy study's figures: ratio vs step, ratio vs training loss, probe accuracy, Lorenz curves."""
    out_dir = Path(out_dir)
    names = list(dict.fromkeys(r["optimizer"] for r in records))
    paths: list[Path] = []

    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for name in names:
        runs = [r for r in records if r["optimizer"] == name]
        steps = np.asarray(runs[0]["history"]["step"])
        _band(ax, steps, np.asarray([r["history"]["ratio"] for r in runs]), name)
    ax.set_xlabel("step")
    ax.set_ylabel("|β_hard| / |β_easy|  (mean ± SE)")
    ax.legend(fontsize=7)
    paths += save_figure(fig, out_dir / "ratio_vs_step")

    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    for name in names:
        runs = [r for r in records if r["optimizer"] == name]
        levels = sorted(set.intersection(*(set(r["final"]["ratio_at_loss"]) for r in runs)), key=float)
        if not levels:
            continue
        vals = np.asarray([[r["final"]["ratio_at_loss"][lv] for lv in levels] for r in runs])
        _band(ax, np.asarray([float(lv) for lv in levels]), vals, name)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("training loss (matched)")
    ax.set_ylabel("|β_hard| / |β_easy|  (mean ± SE)")
    ax.legend(fontsize=7)
    paths += save_figure(fig, out_dir / "ratio_vs_loss")

    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    width = 0.38
    for j, key in enumerate(("easy", "hard")):
        vals = [np.asarray([r["final"]["probe"][key] for r in records if r["optimizer"] == n]) for n in names]
        means = [v.mean() for v in vals]
        ses = [v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else 0.0 for v in vals]
        ax.bar(np.arange(len(names)) + (j - 0.5) * width, means, width, yerr=ses, label=f"{key} feature")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("balanced probe accuracy (mean ± SE)")
    ax.legend(fontsize=7)
    paths += save_figure(fig, out_dir / "probe_accuracy")

    first = min(r["seed"] for r in records)
    lorenz = {}
    for r in records:
        if r["seed"] != first:
            continue
        lorenz[f"{r['optimizer']} λ"] = r["lambda"]
        if r["optimizer"] == "lsam":
            lorenz["lsam λ̃ (phantom)"] = r["lambda_phantom"]
    paths += plot_lorenz(lorenz, out_dir / "lorenz", title=f"importance weights, seed {first}")
    return paths

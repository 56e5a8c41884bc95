"""Assemble and write a report (report.md, report.html, summary.csv, figures/) for a run or sweep."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from samlens._optional import require

with require("report"):
    import pandas as pd

import yaml

from samlens import rundir
from samlens.errors import ConfigError, StorageError
from samlens.report import figures, paired, rho_curve
from samlens.report import headroom as headroom_mod
from samlens.report.load import Run, load_runs
from samlens.report.render import Block, to_html, to_markdown
from samlens.report.tables import (
    GROUP_ACC_PREFIX,
    GROUP_METRICS,
    ID_METRICS,
    PROBE_PREFIX,
    Group,
    common_config,
    finished,
    group_runs,
    is_seed_key,
    long_table,
    metric_order,
    summarize,
    varying_keys,
    wide_table,
)
from samlens.rundir import storage_error

FIGURES = "figures"


def _seed(run: Run) -> str:
    seeds = [f"{v}" for k, v in run.config.items() if is_seed_key(k)]
    return ",".join(seeds) or "—"


def _provenance(runs: Sequence[Run]) -> list[Block]:
    commits: dict[str, int] = {}
    for run in runs:
        commits[run.commit] = commits.get(run.commit, 0) + 1
    rows = [[c, n] for c, n in commits.items()]
    blocks: list[Block] = [("h", 2, "Provenance"), ("table", ["git commit", "runs"], rows)]
    if len(commits) > 1:
        blocks.append(("p", "Warning: the runs come from more than one commit."))
    if any(c.endswith("+dirty") for c in commits):
        blocks.append(("p", "Warning: some runs were made from a working tree with uncommitted changes."))
    return blocks


def _metric_tables(summary: Any, group_names: Sequence[str] | None) -> list[Block]:
    metrics = list(summary["metric"].unique()) if len(summary) else []
    sections = [
        ("Feature quality: probe accuracy per feature", [m for m in metrics if m.startswith(PROBE_PREFIX)]),
        ("In-distribution accuracy", [m for m in ID_METRICS if m in metrics]),
        ("Group robustness", [m for m in GROUP_METRICS if m in metrics]),
        ("Per-group accuracy", metric_order([m for m in metrics if m.startswith(GROUP_ACC_PREFIX)])),
    ]
    listed = {m for _, ms in sections for m in ms}
    sections.append(("Other final metrics", metric_order([m for m in metrics if m not in listed])))
    blocks: list[Block] = []
    for title, names in sections:
        # Leftover metrics can be many (probe internals, losses): list them one per row.
        table = long_table if title == "Other final metrics" else wide_table
        header, rows = table(summary, names)
        if rows and title == "Per-group accuracy" and group_names:
            header = [_group_header(h, group_names) for h in header]
        if rows:
            blocks += [("h", 3, title), ("table", header, rows)]
    return blocks


def _group_header(metric: str, names: Sequence[str]) -> str:
    tail = metric[len(GROUP_ACC_PREFIX) :] if metric.startswith(GROUP_ACC_PREFIX) else ""
    if tail.isdigit() and int(tail) < len(names):
        return f"{metric} ({names[int(tail)]})"
    return metric


def _runs_table(runs: Sequence[Run], groups: Sequence[Group], keys: Sequence[str]) -> Block:
    rows = [
        [r.name, g.label(keys), _seed(r), r.status, r.commit]
        for g in groups
        for r in sorted(g.runs, key=lambda run: (_seed(run).zfill(12), run.name))
    ]
    return ("table", ["run", "setting", "seed", "status", "commit"], rows)


def _config_blocks(runs: Sequence[Run], keys: Sequence[str]) -> list[Block]:
    common = common_config(runs)
    blocks: list[Block] = [("h", 2, "Configuration")]
    if keys:
        blocks.append(("p", "Settings that differ between runs: " + ", ".join(keys) + "."))
    if common:
        blocks.append(
            ("p", "Shared by every run (flattened keys; each run's full config is its config.yaml):")
        )
        blocks.append(("code", yaml.safe_dump(common, sort_keys=False, allow_unicode=True)))
    return blocks


def build_report(root: Path, runs: list[Run], fig_dir: Path) -> tuple[list[Block], Any, list[str]]:
    """Blocks of the report, the summary table and the figure stems written into ``fig_dir``."""
    keys = varying_keys(runs)
    groups = group_runs(runs, keys)
    summary = summarize(groups, keys)
    found = headroom_mod.analyse(groups, keys)
    done = finished(runs)
    counts = {s: sum(r.status == s for r in runs) for s in ("done", "running", "failed", "pending")}
    blocks: list[Block] = [
        ("h", 1, f"samlens report: {root.resolve().name}"),
        (
            "p",
            f"{len(runs)} run(s) in {root} ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
            f"{len(done)} with final results, in {len(groups)} setting(s). "
            f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        ),
        (
            "p",
            "Cells are mean ± standard error (std with ddof=1 / √n) over seeds, with n the number of "
            "seeds; a single seed shows its value only.",
        ),
    ]
    blocks += _provenance(runs)
    blocks.append(("h", 2, "Results"))
    group_names = next((r.meta.get("group_names") for r in runs if r.meta.get("group_names")), None)
    tables = _metric_tables(summary, group_names)
    blocks += headroom_mod.blocks(found)
    settings = paired.analyse(runs)
    blocks += paired.blocks(settings)
    blocks += tables or [("p", "No run has final results yet.")]
    if found:
        summary = pd.concat([summary, headroom_mod.summary_rows(found, keys)], ignore_index=True)
    if settings:
        summary = pd.concat([summary, pd.DataFrame(paired.summary_rows(settings))], ignore_index=True)

    drawn = [
        (
            "headroom",
            figures.headroom(found),
            "Hard-feature probe per optimizer with the untrained floor and the hard-only ceiling",
        ),
        (
            "rho_curve",
            rho_curve.rho_curve(settings),
            "Hard-feature probe vs ρ (log axis) with the floor, ceiling and SGD as bands",
        ),
        (
            "delta_curves",
            rho_curve.delta_curves(runs),
            "Paired hard-feature advantage over SGD per epoch (same seed)",
        ),
        (
            "probe_vs_rho",
            figures.probe_vs_rho(groups, keys),
            "Probe accuracy per feature vs ρ; SGD as a band",
        ),
        ("probe_curves", figures.probe_curves(groups, keys), "Probe accuracy per feature over training"),
        ("group_accuracy", figures.group_accuracy(groups, keys, group_names), "Per-group test accuracy"),
        ("lorenz", figures.lorenz(groups, keys), "Importance-weight Lorenz curves"),
    ]
    stems = []
    fig_blocks: list[Block] = []
    for stem, fig, caption in drawn:
        if fig is None:
            continue
        figures.save(fig, fig_dir, stem)
        stems.append(stem)
        fig_blocks.append(("img", f"{FIGURES}/{stem}.png", caption))
    if fig_blocks:
        blocks += [("h", 2, "Figures"), *fig_blocks]

    blocks += [("h", 2, "Runs"), _runs_table(runs, groups, keys)]
    blocks += _config_blocks(runs, keys)
    failed = [r for r in runs if r.status == "failed"]
    if failed:
        blocks.append(("p", "Failed runs are listed above and excluded from every table and figure."))
    return blocks, summary, stems


def _replace_into(staging: Path, out_dir: Path, stems: list[str]) -> None:
    fig_out = out_dir / FIGURES
    if stems:
        fig_out.mkdir(exist_ok=True)
        for stem in stems:
            for ext in (".png", ".pdf"):
                rundir.move_into_place(staging / FIGURES / f"{stem}{ext}", fig_out / f"{stem}{ext}")
    # Figures a previous report drew but this one does not would be stale evidence.
    stale = ("headroom", "rho_curve", "delta_curves", "probe_vs_rho", "probe_curves")
    stale += ("group_accuracy", "lorenz")
    for stem in stale:
        if stem not in stems:
            for ext in (".png", ".pdf"):
                (fig_out / f"{stem}{ext}").unlink(missing_ok=True)
    for name in ("summary.csv", "report.html", "report.md"):  # report.md last: it marks a complete report
        rundir.move_into_place(staging / name, out_dir / name)


def write_report(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Write report.md, report.html, summary.csv and figures/ for a run or sweep directory.

    ``out`` defaults to ``path``. Everything is rendered in a staging folder first and moved
    into place only when complete, so a failure leaves no half-written report.
    Returns the path of report.md.
    """
    root, runs = load_runs(path)
    out_dir = Path(out) if out is not None else root
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out_dir))
    except OSError as err:
        raise ConfigError(f"cannot write a report into {str(out_dir)!r}: {err.strerror}") from None
    try:
        (staging / FIGURES).mkdir()
        blocks, summary, stems = build_report(root, runs, staging / FIGURES)
        summary.to_csv(staging / "summary.csv", index=False)
        title = blocks[0][2]
        (staging / "report.html").write_text(to_html(blocks, title))
        (staging / "report.md").write_text(to_markdown(blocks))
        _replace_into(staging, out_dir, stems)
    except StorageError:
        raise
    except OSError as err:  # a full or read-only disk while rendering: the old report stays
        raise storage_error(out_dir, err, "the previous report, if any, is unchanged") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "report.md"

"""The two-feature toy study as an artefact: run it and write results.jsonl, summary.json,
summary.txt and (optionally) its figures. Above train and report, so ``samlens toy`` and the
``toy`` reproduction call the same function, neither through the other."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from samlens.report.paired import failed_fit, paired_delta
from samlens.rundir import atomic_write_text
from samlens.train.toy import ToyConfig, run_study, summarize


def _fmt(pair: tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


def paired_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each optimizer against SGD seed by seed (same data, initialisation and batch order): mean ± SE
    of the per-seed differences of the final ratio and of the hard feature's probe, how many are
    positive, and the seeds that failed to fit (``samlens.report.paired.failed_fit`` against that
    seed's SGD run), which are left out of both differences."""
    final = {(r["optimizer"], r["seed"]): r["final"] for r in records}
    sgd = {s: f for (name, s), f in final.items() if name == "sgd"}
    if not sgd:
        return []
    out = []
    for name in dict.fromkeys(r["optimizer"] for r in records):
        if name == "sgd":
            continue
        runs = {s: f for (n, s), f in final.items() if n == name}
        failed = sorted(s for s, f in runs.items() if failed_fit(f["loss"], sgd.get(s, {}).get("loss")))
        kept = {s: f for s, f in runs.items() if s not in failed}
        row: dict[str, Any] = {"optimizer": name, "failed_seeds": failed}
        for key, pick in (("ratio", lambda f: f["ratio"]), ("probe_hard", lambda f: f["probe"]["hard"])):
            d = paired_delta({s: pick(f) for s, f in sgd.items()}, {s: pick(f) for s, f in kept.items()})
            se = None if d.delta.n < 2 else d.delta.se  # JSON has no NaN
            row[key] = {"delta": d.delta.mean, "se": se, "positive": d.positive, "n": d.delta.n}
        out.append(row)
    return out


def _fmt_paired(d: dict[str, Any], digits: int) -> str:
    if not d["n"]:
        return "n/a"
    se = "n/a" if d["se"] is None else f"{d['se']:.{digits}f}"
    return f"{d['delta']:+.{digits}f} ± {se} ({d['positive']}/{d['n']} up)"


def format_summary(rows: list[dict[str, Any]], paired: list[dict[str, Any]] | None = None) -> str:
    """The summary table and one sentence per variant relative to SGD."""
    head = f"{'optimizer':10s} {'n':>2s} {'|b_hard|/|b_easy| end':>22s} {'ratio @ matched loss':>26s} "
    head += (
        f"{'train loss':>16s} {'Gini lam':>16s} {'Gini lam~':>16s} {'probe easy':>14s} {'probe hard':>14s}"
    )
    lines = [head]
    for r in rows:
        matched = (
            f"{_fmt(r['ratio_at_matched_loss'])} @{r['matched_loss']:g}" if "matched_loss" in r else "n/a"
        )
        lines.append(
            f"{r['optimizer']:10s} {r['n']:2d} {_fmt(r['ratio']):>22s} {matched:>26s} {_fmt(r['loss']):>16s} "
            f"{_fmt(r['gini_lambda']):>16s} {_fmt(r['gini_lambda_phantom']):>16s} "
            f"{_fmt(r['probe_easy']):>14s} {_fmt(r['probe_hard']):>14s}"
        )
    sgd = next((r for r in rows if r["optimizer"] == "sgd"), None)
    if sgd is not None:
        for r in rows:
            if r is sgd:
                continue
            words = []
            for key, label in (("ratio", "final ratio"), ("ratio_at_matched_loss", "ratio at matched loss")):
                if key in r and key in sgd and sgd[key][0] > 0:
                    words.append(f"{label} x{r[key][0] / sgd[key][0]:.2f} vs SGD")
            lines.append(f"{r['optimizer']}: " + "; ".join(words))
    if paired:
        lines.append("paired vs SGD (same seed; failed fits left out):")
        for p in paired:
            failed = f"; failed to fit: seeds {p['failed_seeds']}" if p["failed_seeds"] else ""
            lines.append(
                f"  {p['optimizer']:10s} Δ ratio {_fmt_paired(p['ratio'], 3)}; "
                f"Δ probe hard {_fmt_paired(p['probe_hard'], 4)}{failed}"
            )
    return "\n".join(lines)


def _default_progress(r: dict[str, Any]) -> None:
    print(f"  {r['optimizer']:10s} seed {r['seed']}: ratio {r['final']['ratio']:.4f}", flush=True)


def write_toy_study(
    cfg: ToyConfig,
    out: str | Path,
    *,
    figures: bool = True,
    progress: Callable[[dict[str, Any]], None] | None = _default_progress,
) -> str:
    """Run the study of ``cfg`` and write its files under ``out``; returns the summary table.

    Every file is written atomically, so an interrupted study leaves whole files or none.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = run_study(cfg, progress=progress)
    rows, paired = summarize(records), paired_rows(records)
    lines = [json.dumps(dict(r)) for r in records]
    atomic_write_text(out / "results.jsonl", "\n".join(lines) + "\n")
    summary = {"config": cfg.to_dict(), "summary": rows, "paired": paired}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    if figures:
        from samlens.report.mechanism_plots import plot_toy

        plot_toy(records, out)
    table = format_summary(rows, paired)
    atomic_write_text(out / "summary.txt", table + "\n")
    return table

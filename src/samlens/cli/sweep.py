"""``samlens sweep launch|status GRID``: run a grid of configs on a process pool, Ray or SLURM."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from samlens.cli.launch_options import add_launcher_arguments, check_launcher, launcher_options
from samlens.errors import ConfigError
from samlens.rundir import is_locked
from samlens.train import launchers
from samlens.train.sweep import (
    STATES,
    PointStatus,
    SweepPoint,
    count_states,
    expand,
    load_grid_spec,
    run_summary,
    sweep_status,
    write_manifest,
)

COMMAND = "sweep"
HELP = "Launch a grid sweep (local, ray or slurm) or show its status."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    sub.required = True

    launch = sub.add_parser("launch", help="run every point that is not done yet")
    launch.add_argument("grid", help="grid spec YAML (base + grid + exclude)")
    launch.add_argument("--out", help="sweep directory (default: the spec's 'out' or runs/sweeps/<name>)")
    launch.add_argument("--workers", type=int, default=1, help="runs at the same time (default 1)")
    add_launcher_arguments(launch)
    launch.set_defaults(_action=_launch)

    status = sub.add_parser("status", help="count done / running / failed / pending runs")
    status.add_argument("grid", help="grid spec YAML")
    status.add_argument("--out", help="sweep directory (default: the spec's 'out' or runs/sweeps/<name>)")
    status.set_defaults(_action=_status)


def run(args: argparse.Namespace) -> int:
    return args._action(args)


def _age(updated: float | None) -> str:
    if updated is None:
        return "-"
    seconds = max(0.0, time.time() - updated)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _summary(statuses: list[PointStatus]) -> str:
    counts = count_states(statuses)
    return ", ".join(f"{counts[s]} {s}" for s in STATES) + f" (of {len(statuses)})"


def status_table(statuses: list[PointStatus]) -> str:
    """Counts line plus one row per run."""
    rows = []
    for s in statuses:
        assignment = " ".join(f"{k}={v}" for k, v in s.point.assignment.items())
        note = f"  [{s.reason}]" if s.reason else ""
        rows.append([str(s.point.index), s.point.config_hash, s.state, _age(s.updated), assignment + note])
    return _summary(statuses) + "\n\n" + _format_table(["#", "run", "state", "updated", "assignment"], rows)


def _describe(point: SweepPoint) -> str:
    assignment = " ".join(f"{k}={v}" for k, v in point.assignment.items())
    return f"{point.config_hash} ({assignment})" if assignment else point.config_hash


def finish_line(outcome: launchers.Outcome, point: SweepPoint | None) -> str:
    """``<hash> (<assignment>): done  test_acc 0.9123  probe_acc_other 0.7100``."""
    name = _describe(point) if point is not None else Path(outcome.run_dir).name
    detail = outcome.message if outcome.state == "error" else ""
    if outcome.state in ("done", "failed"):
        detail = run_summary(outcome.run_dir)
    elif outcome.state == "running":
        detail = "in another process"
    return f"{name}: {outcome.state}  {detail}".rstrip()


def _out_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.out) if args.out else None


def _status(args: argparse.Namespace) -> int:
    spec = load_grid_spec(args.grid)
    points = expand(spec, _out_dir(args))
    print(f"sweep {points[0].run_dir.parent}")
    print(status_table(sweep_status(points)))
    return 0


def _launch(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    check_launcher(args.launcher)
    spec = load_grid_spec(args.grid)
    points = expand(spec, _out_dir(args))
    out_dir = points[0].run_dir.parent
    options = launcher_options(args, out_dir)  # every option checked before anything is written
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create sweep directory {str(out_dir)!r}: {err.strerror}") from None
    write_manifest(points, spec, out_dir)

    before = sweep_status(points)
    # A run whose lock is held is being trained by another process on this machine (e.g. a
    # second launch of this sweep); a "running" marker without a held lock may be stale or
    # from another host, so that run is tried and its worker finds out under the lock.
    busy = [s.point for s in before if s.state == "running" and is_locked(s.point.run_dir)]
    todo = [s.point for s in before if s.state == "pending" or (s.state == "running" and s.point not in busy)]
    counts = count_states(before)
    print(
        f"sweep {out_dir}: {len(points)} runs; {counts['done']} done (skipped), "
        f"{counts['failed']} failed (skipped; delete a run directory to retry), "
        f"{len(busy)} running in another process (skipped), {len(todo)} to run "
        f"with launcher {args.launcher} x{args.workers}",
        flush=True,
    )
    for point in busy:
        print(f"  {_describe(point)}: running (in another process)", flush=True)
    tasks = [launchers.Task(p.config_dict(), str(p.run_dir), spec.imports) for p in todo]
    by_dir = {str(p.run_dir): p for p in todo}
    finished = 0

    def report(outcome: launchers.Outcome) -> None:
        nonlocal finished
        finished += 1
        print(f"  [{finished}/{len(tasks)}] {finish_line(outcome, by_dir.get(outcome.run_dir))}", flush=True)

    launchers.launch(
        args.launcher,
        tasks,
        workers=args.workers,
        report=report,
        say=lambda line: print(line, flush=True),
        **options,
    )

    after = sweep_status(points)
    print(_summary(after))
    return 0 if all(s.state == "done" for s in after) else 1

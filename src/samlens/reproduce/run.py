"""Run a named reproduction: expand its grid, launch the points, write the report."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from samlens.errors import ConfigError
from samlens.optim import perturbs
from samlens.report.headroom import verdict_lines
from samlens.reproduce import headroom
from samlens.reproduce.catalog import Reproduction, config_path, get_reproduction
from samlens.rundir import read_results, run_status
from samlens.train.config import ExperimentConfig, config_to_dict
from samlens.train.sweep import GridSpec, SweepPoint, expand, load_grid_spec, sweep_status, write_manifest


@dataclass(frozen=True)
class Result:
    """Where the report went (None if nothing finished) and how many points did not finish."""

    report: Path | None
    unfinished: int


def default_out(name: str, quick: bool) -> Path:
    """``runs/reproduce/<name>`` (``<name>_quick`` under ``--quick``, so the two never mix)."""
    return Path("runs") / "reproduce" / (f"{name}_quick" if quick else name)


def quick_spec(spec: GridSpec, reproduction: Reproduction) -> GridSpec:
    """The reduced grid: quick overrides on every point, quick values for the listed grid keys."""
    kept = spec.grids[: reproduction.quick_subgrids] if reproduction.quick_subgrids else spec.grids
    grids = [{k: list(reproduction.quick_grid.get(k, v)) for k, v in g.items()} for g in kept]
    base = {**spec.base_overrides, **reproduction.quick_base}
    return dataclasses.replace(spec, grids=grids, base_overrides=base)


def check_data_dir(reproduction: Reproduction, data_dir: str | None) -> Path | None:
    """A real dataset needs ``--data-dir``; say which files it must hold when it is missing."""
    if not reproduction.needs_data:
        if data_dir is not None:
            raise ConfigError(f"{reproduction.name} uses offline data only; do not pass --data-dir")
        return None
    expected = reproduction.data_files.replace("DIR", data_dir or "DIR")  # type: ignore[union-attr]
    if data_dir is None:
        raise ConfigError(f"{reproduction.name} needs --data-dir DIR holding {expected}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"--data-dir {data_dir!r} is not a directory; {reproduction.name} expects {expected}"
        )
    return path


def load_spec(reproduction: Reproduction, data_dir: Path | None, quick: bool) -> GridSpec:
    """The reproduction's grid spec, with the data directory and ``--quick`` applied."""
    spec = load_grid_spec(config_path(reproduction))
    if data_dir is not None:
        spec = dataclasses.replace(spec, base_overrides={**spec.base_overrides, "data.root": str(data_dir)})
    return quick_spec(spec, reproduction) if quick else spec


def plan(
    name: str, data_dir: str | None = None, out: str | Path | None = None, quick: bool = False
) -> tuple[Reproduction, GridSpec, list[SweepPoint]]:
    """Validate everything (name, data directory, grid) and expand the points; writes nothing."""
    reproduction = get_reproduction(name)
    root = check_data_dir(reproduction, data_dir)
    if reproduction.kind != "sweep":
        raise ConfigError(f"{name} is not a sweep; use run_toy")
    spec = load_spec(reproduction, root, quick)
    out_dir = Path(out) if out is not None else default_out(name, quick)
    return reproduction, spec, expand(spec, out_dir)


def reproduce(
    name: str,
    data_dir: str | None = None,
    out: str | Path | None = None,
    quick: bool = False,
    launcher: str = "local",
    workers: int = 1,
    log: Callable[[str], None] = print,
    launcher_options: dict[str, Any] | None = None,
) -> Result:
    """Run reproduction ``name`` and write its report. ``launcher_options`` are the launcher's own
    (``samlens.cli.launch_options``: SLURM resources, a Ray address); floors, ceilings and grid
    points all run as the launcher's tasks.

    Finished points are skipped (run directories are idempotent), so rerunning after an
    interruption only runs what is left. Failed points are reported and left out of the tables;
    when no point finished there is no report.
    """
    reproduction = get_reproduction(name)
    if reproduction.kind == "toy":
        return run_toy(reproduction, data_dir, out, quick, log)
    from samlens.report import write_report
    from samlens.train import launchers

    _, spec, points = plan(name, data_dir, out, quick)
    out_dir = points[0].run_dir.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(points, spec, out_dir)
    baselines = [p.config for p in points if headroom.is_baseline(p.config)]
    ceilings = [headroom.ceiling_config(c) for c in baselines] if reproduction.hard_only else []
    todo = [
        (cfg, headroom.floor_dir(out_dir, cfg), "untrained (floor)")
        for cfg in baselines
        if run_status(headroom.floor_dir(out_dir, cfg)) != "done"
    ]
    todo += [
        (s.point.config, s.point.run_dir, "")
        for s in sweep_status(points)
        if s.state in ("pending", "running")
    ]
    todo += [
        (c, headroom.ceiling_dir(out_dir, c), "hard-only (ceiling)")
        for c in ceilings
        if run_status(headroom.ceiling_dir(out_dir, c)) in ("pending", "running")
    ]
    # References and baselines first: a partial grid then already has its floor-to-ceiling range.
    todo.sort(key=lambda item: not (item[2] or headroom.is_baseline(item[0])))
    tasks = [launchers.Task(config_to_dict(c), str(d), spec.imports) for c, d, _ in todo]
    what = {str(d): describe(c, role) for c, d, role in todo}
    extra = f" + {len(baselines)} untrained floors" + (
        f" + {len(ceilings)} hard-only ceilings" if ceilings else ""
    )
    log(
        f"reproduce {name}{' (quick)' if quick else ''}: {len(points)} runs{extra}; "
        f"{len(tasks)} to run in {out_dir}"
    )
    start = time.time()

    def report(outcome: launchers.Outcome) -> None:  # each run's line as it finishes
        metrics = _final(outcome.run_dir)
        log(run_line(Path(outcome.run_dir), outcome.state, metrics, what[outcome.run_dir], outcome.message))

    launchers.launch(
        launcher,
        tasks,
        workers=workers,
        run_fn=headroom.run_task,
        report=report,
        say=log,
        **(launcher_options or {}),
    )
    states = [s.state for s in sweep_status(points)]
    unfinished = sum(state != "done" for state in states)
    unfinished += sum(run_status(headroom.ceiling_dir(out_dir, c)) != "done" for c in ceilings)
    unfinished += sum(run_status(headroom.floor_dir(out_dir, c)) != "done" for c in baselines)
    if all(state != "done" for state in states):
        log(f"{name}: no run finished; see train.log in the run directories under {out_dir}")
        return Result(None, unfinished)
    if name == "mechanism":
        from samlens.reproduce.importance import record_importance

        record_importance([p.run_dir for p in points])
    report = write_report(out_dir)
    for line in verdict_lines(out_dir):
        log(line)
    log(f"{name}: {len(tasks)} runs in {time.time() - start:.0f} s; {unfinished} not done; wrote {report}")
    return Result(report, unfinished)


def _final(run_dir: str | Path) -> dict[str, Any]:
    finals = [e for e in read_results(run_dir) if e.get("event") == "final"]
    return dict(finals[-1].get("metrics") or {}) if finals else {}


def describe(cfg: ExperimentConfig, role: str = "") -> str:
    """``sam rho 0.05, seed 1`` (with ``role`` first for the floor and ceiling)."""
    what = cfg.optim.name if not perturbs(cfg.optim.name) else f"{cfg.optim.name} rho {cfg.optim.rho:g}"
    return ", ".join(x for x in (role, what, f"seed {cfg.train.seed}") if x)


def run_line(run_dir: Path, state: str, metrics: dict[str, Any], what: str, message: str = "") -> str:
    """``  <run>: <state>  probe_acc_label 0.912  test_acc 0.950  (<what>)`` for the progress log."""
    shown = "".join(
        f"  {key} {metrics[key]:.3f}"
        for key in ("probe_acc_label", "probe_acc_other", "test_acc")
        if isinstance(metrics.get(key), (int, float))
    )
    tail = f" {message}" if message and state != "done" else ""
    return f"  {run_dir.name}: {state}{shown}  ({what}){tail}"


def load_toy_options(reproduction: Reproduction, quick: bool) -> dict[str, Any]:
    path = config_path(reproduction)
    data = yaml.safe_load(path.read_text()) or {}
    options = data.get("toy") if isinstance(data, dict) else None
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: expected a 'toy' mapping of `samlens toy` options")
    return {**options, **reproduction.quick_base} if quick else dict(options)


def run_toy(
    reproduction: Reproduction,
    data_dir: str | None,
    out: str | Path | None,
    quick: bool,
    log: Callable[[str], None] = print,
) -> Result:
    """The toy study (not a sweep of image runs), run by the same function as ``samlens toy``."""
    from samlens.reproduce.toy import write_toy_study
    from samlens.train.toy import toy_config_from_options

    check_data_dir(reproduction, data_dir)
    out_dir = Path(out) if out is not None else default_out(reproduction.name, quick)
    options = load_toy_options(reproduction, quick)
    figures = not options.get("no_figures", False)
    cfg = toy_config_from_options(options)
    start = time.time()
    table = write_toy_study(
        cfg,
        out_dir,
        figures=figures,
        progress=lambda r: log(f"  {r['optimizer']:5s} seed {r['seed']}: ratio {r['final']['ratio']:.4f}"),
    )
    log(table)
    log(f"toy: {time.time() - start:.0f} s; wrote {out_dir}/summary.txt")
    return Result(out_dir / "summary.txt", 0)

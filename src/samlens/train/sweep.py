"""Grid sweeps over experiment configs: spec parsing, deterministic expansion, run status.

A grid spec is a YAML file::

    base: ../dominoes.yaml            # a config file (relative to this file) or an inline mapping
    out: runs/sweeps/dominoes         # optional default output directory
    grid:                             # dotted config keys -> lists of values
      optim.name: [sgd, sam]
      train.seed: [0, 1, 2]
    exclude:                          # optional partial assignments to drop
      - {optim.name: sgd, train.seed: 2}
    imports: [my_datasets]            # optional modules that register custom datasets/models/optimizers

``grid`` may also be a list of such mappings; the sweep is then the union of the
sub-grids, in order. Points whose resolved configs are identical are run once.
Every point runs in ``<out>/<config_hash>``, so relaunching finds finished runs.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlens.errors import ConfigError
from samlens.rundir import flatten_tree
from samlens.train.schema import read_yaml_file

#: Run states reported by ``sweep status``, in display order.
STATES = ("done", "running", "failed", "pending")


@dataclass(frozen=True)
class GridSpec:
    """A parsed grid spec (nothing resolved against the config schema yet)."""

    path: Path | None
    base_path: Path | None
    base_overrides: dict[str, Any]
    grids: list[dict[str, list[Any]]]
    exclude: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepPoint:
    """One resolved point of a sweep."""

    index: int
    assignment: dict[str, Any]
    config: Any  # samlens.train.config.ExperimentConfig
    config_hash: str
    run_dir: Path

    def config_dict(self) -> dict[str, Any]:
        """The resolved config as a nested dict: plain data that crosses process boundaries."""
        from samlens.train.config import config_to_dict

        return config_to_dict(self.config)


@dataclass(frozen=True)
class PointStatus:
    """State of one sweep point's run directory."""

    point: SweepPoint
    state: str
    updated: float | None  # mtime of the newest file, seconds since the epoch
    reason: str = ""


def _where(path: Path | None) -> str:
    return f"{path}: " if path is not None else ""


def _parse_grid(raw: Any, path: Path | None) -> dict[str, list[Any]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{_where(path)}'grid' must be a non-empty mapping of dotted keys to lists")
    grid: dict[str, list[Any]] = {}
    for key, values in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{_where(path)}grid key {key!r} must be a string")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{_where(path)}grid key {key!r} must map to a non-empty list of values")
        grid[key] = list(values)
    return grid


def parse_grid_spec(data: Any, path: Path | None = None) -> GridSpec:
    """Validate the structure of a grid spec mapping (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(path)}a grid spec must be a YAML mapping with 'base' and 'grid'")
    fields = ("base", "grid", "exclude", "out", "imports")
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"{_where(path)}unknown grid spec field(s) {unknown}; valid: {', '.join(fields)}")
    if "grid" not in data:
        raise ConfigError(f"{_where(path)}missing 'grid' (dotted config keys -> lists of values)")

    base = data.get("base")
    base_path: Path | None = None
    base_overrides: dict[str, Any] = {}
    if isinstance(base, str):
        try:
            candidate = Path(base).expanduser()
            if not candidate.is_absolute() and path is not None and (path.parent / candidate).exists():
                candidate = path.parent / candidate
            found = candidate.is_file()
        except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, an unknown ~user
            found = False
        if not found:
            raise ConfigError(f"{_where(path)}base config {base!r} not found")
        base_path = candidate
    elif isinstance(base, Mapping):
        base_overrides = flatten_tree(base, keep_empty=True)
    elif base is not None:
        raise ConfigError(f"{_where(path)}'base' must be a config file path or a mapping")

    raw_grid = data["grid"]
    grids = (
        [_parse_grid(g, path) for g in raw_grid]
        if isinstance(raw_grid, list)
        else [_parse_grid(raw_grid, path)]
    )
    if not grids:
        raise ConfigError(f"{_where(path)}'grid' is an empty list")

    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(e, Mapping) and e for e in exclude):
        raise ConfigError(
            f"{_where(path)}'exclude' must be a list of non-empty mappings (partial assignments)"
        )

    out = data.get("out")
    if out is not None and not isinstance(out, str):
        raise ConfigError(f"{_where(path)}'out' must be a directory path")
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError(f"{_where(path)}'imports' must be a list of module names")
    return GridSpec(
        path=path,
        base_path=base_path,
        base_overrides=base_overrides,
        grids=grids,
        exclude=[dict(e) for e in exclude],
        out=Path(out) if out else None,
        imports=tuple(imports),
    )


def load_grid_spec(path: str | os.PathLike[str]) -> GridSpec:
    """Read and validate a grid spec YAML file; problems raise a one-line ConfigError."""
    return parse_grid_spec(read_yaml_file(path, "grid file"), Path(path))


def _grid_assignments(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def import_plugins(modules: tuple[str, ...] | list[str], source: Path | None = None) -> None:
    """Import the modules that register a sweep's custom datasets, models or optimizers
    (in the launching process and again in every worker); ``source``: the spec naming them."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except (ImportError, TypeError, ValueError) as err:  # TypeError, ValueError: not a module name
            raise ConfigError(
                f"{_where(source)}cannot import module {name!r} listed in 'imports': {err}"
            ) from None


def _resolve(spec: GridSpec, assignment: Mapping[str, Any]) -> Any:
    from samlens.train.config import load_config

    overrides = {**spec.base_overrides, **assignment}
    return load_config(str(spec.base_path) if spec.base_path else None, overrides)


def _check_keys(spec: GridSpec) -> None:
    """Fail on the first grid or exclude key that the config does not have, naming it."""
    keys: dict[str, Any] = {}
    for grid in spec.grids:
        for key, values in grid.items():
            keys.setdefault(key, values[0])
    for rule in spec.exclude:
        for key in rule:
            keys.setdefault(key, None)
    try:
        flat = _flat(_resolve(spec, {}))
    except ConfigError as err:
        raise ConfigError(f"{_where(spec.path)}base config: {err}") from None
    for key, value in keys.items():
        if key in flat:
            continue
        if value is not None:
            # Keys inside free-form option mappings are valid without appearing in the base config.
            try:
                _resolve(spec, {key: value})
                continue
            except ConfigError:
                pass
        raise ConfigError(f"{_where(spec.path)}grid key {key!r} does not exist in the config")


def _flat(cfg: Any) -> dict[str, Any]:
    from samlens.train.config import flatten_config

    return dict(flatten_config(cfg))


def _excluded(flat: Mapping[str, Any], rules: list[dict[str, Any]]) -> bool:
    return any(all(key in flat and flat[key] == value for key, value in rule.items()) for rule in rules)


def default_out_dir(spec: GridSpec) -> Path:
    """Where a sweep writes when no ``--out`` is given: the spec's ``out`` or ``runs/sweeps/<stem>``."""
    if spec.out is not None:
        return spec.out
    stem = spec.path.stem if spec.path is not None else "sweep"
    return Path("runs") / "sweeps" / stem


def expand(spec: GridSpec, out: str | os.PathLike[str] | None = None) -> list[SweepPoint]:
    """Resolve every grid point, in a stable order: sub-grids in order, keys in spec order,
    values in list order (the last key varies fastest); excluded and duplicate configs dropped.

    Touches nothing on disk. Raises ConfigError naming an unknown key, an invalid value or
    an unknown dataset / model / optimizer name.
    """
    from samlens.train.build import check_names
    from samlens.train.config import config_hash

    out_dir = Path(out) if out is not None else default_out_dir(spec)
    import_plugins(spec.imports, spec.path)
    _check_keys(spec)
    points: list[SweepPoint] = []
    seen: set[str] = set()
    for grid in spec.grids:
        for assignment in _grid_assignments(grid):
            try:
                cfg = _resolve(spec, assignment)
                check_names(cfg)
            except ConfigError as err:
                raise ConfigError(f"{_where(spec.path)}grid point {assignment}: {err}") from None
            if spec.exclude and _excluded(_flat(cfg), spec.exclude):
                continue
            digest = config_hash(cfg)
            if digest in seen:
                continue
            seen.add(digest)
            points.append(SweepPoint(len(points), assignment, cfg, digest, out_dir / digest))
    if not points:
        raise ConfigError(f"{_where(spec.path)}every grid point is excluded; nothing to run")
    return points


def _newest_mtime(run_dir: Path) -> float | None:
    times = [p.stat().st_mtime for p in run_dir.iterdir() if p.is_file()]
    return max(times) if times else None


def point_status(point: SweepPoint) -> PointStatus:
    """Classify a point by its run directory (see ``samlens.rundir.run_status``);
    an interrupted run (stale ``running`` marker) counts as pending."""
    from samlens.rundir import FAILED, run_status

    run_dir = point.run_dir
    if not run_dir.is_dir():
        return PointStatus(point, "pending", None)
    state = run_status(run_dir)
    reason = ""
    if state == "failed":
        lines = (run_dir / FAILED).read_text(errors="replace").strip().splitlines()
        reason = lines[0] if lines else ""
    return PointStatus(point, state, _newest_mtime(run_dir), reason)


def sweep_status(points: list[SweepPoint]) -> list[PointStatus]:
    """Status of every point, in sweep order."""
    return [point_status(p) for p in points]


def count_states(statuses: list[PointStatus]) -> dict[str, int]:
    """Counts per state, in the fixed order of :data:`STATES`."""
    counts = dict.fromkeys(STATES, 0)
    for s in statuses:
        counts[s.state] += 1
    return counts


def write_manifest(points: list[SweepPoint], spec: GridSpec, out_dir: Path) -> Path:
    """Record the spec and its points in ``<out>/sweep.json`` (atomically) so a sweep
    directory explains itself to ``samlens report`` and to people."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "grid_file": str(spec.path) if spec.path else None,
        "base": str(spec.base_path) if spec.base_path else spec.base_overrides,
        "grid": spec.grids,
        "exclude": spec.exclude,
        "imports": list(spec.imports),
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "points": [{"hash": p.config_hash, "assignment": p.assignment} for p in points],
    }
    from samlens.rundir import atomic_write_text

    target = out_dir / "sweep.json"
    atomic_write_text(target, json.dumps(manifest, indent=2, default=str) + "\n")
    return target


#: Metrics named in the line printed as each run of a sweep finishes, when the run has them.
KEY_METRICS = (
    "test_acc",
    "worst_group_acc",
    "probe_acc_label",
    "probe_acc_other",
    "dfr_worst_group_acc",
    "transfer_probe_acc",
)


def run_summary(run_dir: str | os.PathLike[str]) -> str:
    """``test_acc 0.9123  probe_acc_other 0.7100``: the key metrics of a run's final record
    (empty when it has none, e.g. a failed run)."""
    from samlens.rundir import FAILED, read_results

    run_dir = Path(run_dir)
    finals = [r for r in read_results(run_dir) if r.get("event") == "final"]
    if not finals:
        failed = run_dir / FAILED
        if failed.exists():
            lines = failed.read_text(errors="replace").strip().splitlines()
            return lines[0] if lines else ""
        return ""
    metrics = finals[-1].get("metrics") or {}
    return "  ".join(
        f"{key} {metrics[key]:.4f}" for key in KEY_METRICS if isinstance(metrics.get(key), (int, float))
    )


def point_config(
    config: Mapping[str, Any] | Any,
    run_dir: str | os.PathLike[str],
    imports: tuple[str, ...] | list[str] = (),
) -> Any:
    """The ExperimentConfig a worker received for ``run_dir``, after importing the spec's plugins.

    The directory name is the identity of the run: a name that is not the config's hash means the
    config did not survive the trip to this process, and running it would file results under the
    wrong config, so that is an error.
    """
    from samlens.train.config import ExperimentConfig, config_from_dict, config_hash

    import_plugins(imports)
    cfg = config if isinstance(config, ExperimentConfig) else config_from_dict(dict(config))
    if Path(run_dir).name != config_hash(cfg):
        raise RuntimeError(f"config hash {config_hash(cfg)} does not match run directory {run_dir}")
    return cfg


def run_point(
    config: Mapping[str, Any] | Any,
    run_dir: str | os.PathLike[str],
    threads: int | None = None,
    imports: tuple[str, ...] | list[str] = (),
) -> str:
    """Run (or resume, or skip) one sweep point; the function every launcher executes.

    ``config`` is a nested config dict (plain data, so it crosses process and machine
    boundaries) or an ExperimentConfig; ``imports`` are the spec's plugin modules.
    Returns the final state of the run directory: "done", "failed", or "running" when
    another process holds the run (e.g. a second launcher of the same sweep).
    """
    from samlens.rundir import RunBusy
    from samlens.train.runner import run_experiment

    cfg = point_config(config, run_dir, imports)
    run_dir = Path(run_dir)
    try:
        run_experiment(cfg, run_dir, quiet=True, threads=threads)
    except RunBusy:
        return "running"
    return "done" if (run_dir / "done").exists() else "failed"

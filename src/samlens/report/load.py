"""Read run directories (one run, or every run under a sweep directory) for reporting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from samlens import rundir
from samlens.errors import ConfigError


@dataclass
class Run:
    """Everything a report needs from one run directory."""

    path: Path
    name: str  # path relative to the report root ("." for a single run)
    config: dict[str, Any]  # flattened dotted keys
    meta: dict[str, Any]
    events: list[dict[str, Any]]
    status: str  # done / failed / running / pending
    final: dict[str, Any] = field(default_factory=dict)  # metrics of the last "final" event

    @property
    def commit(self) -> str:
        """Git commit the run was made with, "+dirty" appended when the tree had changes."""
        git = self.meta.get("git") if isinstance(self.meta.get("git"), dict) else {}
        commit = git.get("commit") or self.meta.get("git_commit") or self.meta.get("commit") or "unknown"
        dirty = git.get("dirty", self.meta.get("git_dirty", self.meta.get("dirty")))
        return f"{commit}+dirty" if dirty else str(commit)


def _read_config(run_dir: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The flattened config every record carries; a run without records (pending) reads its
    ``config.yaml``, which holds the whole resolved config, and flattens it the same way."""
    for event in events:
        if isinstance(event.get("config"), dict) and event["config"]:
            return dict(event["config"])
    path = run_dir / rundir.CONFIG
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(errors="replace"))
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict):
            return rundir.flatten(data)
    return {}


def _status(run_dir: Path) -> str:
    if not any(run_dir.iterdir()):
        return "pending"
    return rundir.run_status(run_dir)


def is_run_dir(path: Path) -> bool:
    """A directory is a run if it holds a run's config or results."""
    return (path / rundir.RESULTS).is_file() or (path / rundir.CONFIG).is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else every run below it (hidden folders skipped), sorted."""
    if is_run_dir(root):
        return [root]
    found = set()
    for marker in (rundir.RESULTS, rundir.CONFIG):
        for path in root.rglob(marker):
            rel = path.parent.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):
                found.add(path.parent)
    return sorted(found)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_run(run_dir: Path, root: Path) -> Run:
    """Parse one run directory; a partial or in-progress run loads with what it has."""
    events = rundir.read_results(run_dir)
    meta = rundir.read_meta(run_dir)
    finals = [e for e in events if e.get("event") == "final" and isinstance(e.get("metrics"), dict)]
    final = dict(finals[-1]["metrics"]) if finals else {}
    name = str(run_dir.relative_to(root)) if run_dir != root else run_dir.name
    return Run(run_dir, name, _read_config(run_dir, events), meta, events, _status(run_dir), final)


def load_runs(path: str | Path) -> tuple[Path, list[Run]]:
    """All runs of a run or sweep directory; a path without any run is a user error."""
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{str(root)!r} does not exist")
    if not root.is_dir():
        raise ConfigError(f"{str(root)!r} is not a directory")
    dirs = find_run_dirs(root)
    if not dirs:
        raise ConfigError(
            f"no run directories (with {rundir.RESULTS} or {rundir.CONFIG}) under {str(root)!r}"
        )
    return root, [load_run(d, root) for d in dirs]


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a metrics mapping (arrays and NaNs dropped)."""
    return {k: float(v) for k, v in metrics.items() if _finite_number(v)}

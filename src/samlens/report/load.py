"""Read run directories (one run, or every run under a sweep directory) for reporting."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlens.errors import ConfigError

RESULTS = "results.jsonl"
CONFIG = "config.yaml"
META = "meta.json"


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


def _read_events(path: Path) -> list[dict[str, Any]]:
    events = []
    if not path.exists():
        return events
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a run killed mid-write
        if isinstance(event, dict):
            events.append(event)
    return events


def _read_config(run_dir: Path, events: list[dict[str, Any]]) -> dict[str, Any]:
    for event in events:
        if isinstance(event.get("config"), dict) and event["config"]:
            return dict(event["config"])
    path = run_dir / CONFIG
    if path.exists():
        from samlens.train.config import flatten_config, load_config
        from samlens.train.schema import flatten, read_yaml_file

        try:
            return dict(flatten_config(load_config(path)))
        except ConfigError:
            pass  # written by another version of the schema: report its keys as they are
        try:
            data = read_yaml_file(path)
        except ConfigError:
            data = None
        if isinstance(data, dict):
            return flatten(data)
    return {}


def _status(run_dir: Path) -> str:
    from samlens.train.rundir import run_status

    if not any(run_dir.iterdir()):
        return "pending"
    return run_status(run_dir)


def is_run_dir(path: Path) -> bool:
    """A directory is a run if it holds a run's config or results."""
    return (path / RESULTS).is_file() or (path / CONFIG).is_file()


def find_run_dirs(root: Path) -> list[Path]:
    """``root`` itself if it is a run, else every run below it (hidden folders skipped), sorted."""
    if is_run_dir(root):
        return [root]
    found = set()
    for marker in (RESULTS, CONFIG):
        for path in root.rglob(marker):
            rel = path.parent.relative_to(root)
            if not any(part.startswith(".") for part in rel.parts):
                found.add(path.parent)
    return sorted(found)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_run(run_dir: Path, root: Path) -> Run:
    """Parse one run directory; a partial or in-progress run loads with what it has."""
    events = _read_events(run_dir / RESULTS)
    meta: dict[str, Any] = {}
    if (run_dir / META).exists():
        try:
            meta = json.loads((run_dir / META).read_text())
        except json.JSONDecodeError:
            meta = {}
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
        raise ConfigError(f"no run directories (with {RESULTS} or {CONFIG}) under {str(root)!r}")
    return root, [load_run(d, root) for d in dirs]


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a metrics mapping (arrays and NaNs dropped)."""
    return {k: float(v) for k, v in metrics.items() if _finite_number(v)}

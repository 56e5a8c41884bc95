"""Fixtures: a hand-written sweep directory (see runfactory)."""

from __future__ import annotations

from pathlib import Path

import pytest
from runfactory import FINAL, write_run

from samlens.train.config import config_hash, dump_config, load_config


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight finished runs (SGD × 3 seeds, SAM ρ=0.05 × 3, SAM ρ=0.1 × 2), one failed, one pending."""
    root = tmp_path_factory.mktemp("report") / "sweep"
    for optim, rho, seed in FINAL:
        write_run(root, optim, rho, seed)
    write_run(root, "sam", 0.1, 7, status="failed")
    pending = load_config(None, {"optim.name": "sam", "optim.rho": 0.2, "train.epochs": 3})
    (root / config_hash(pending)).mkdir()
    dump_config(pending, root / config_hash(pending) / "config.yaml")
    (root / "sweep.json").write_text("{}")
    (root / ".submitit").mkdir()
    return root


@pytest.fixture(scope="module")
def reported_sweep(fake_sweep: Path) -> Path:
    """``fake_sweep`` after one ``write_report`` (figures are slow; tests only read the output)."""
    from samlens.report import write_report

    write_report(fake_sweep)
    return fake_sweep

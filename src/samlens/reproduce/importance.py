"""Importance-weight Gini of finished runs, for the mechanism check on real images.

The training runner does not record importance weights, so after the sweep each finished run's
final checkpoint is loaded and λ (real parameters) and λ̃ (LSAM phantom head, at the run's own
ρ) are computed on the first ``n`` training examples (eval transform). They are appended to the
run's results.jsonl as a further ``final`` event (the earlier final metrics plus ``gini_lambda``,
``gini_lambda_phantom`` and the weights), so that ``samlens report`` tabulates the Gini values and
draws the Lorenz curves.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import torch

from samlens import rundir
from samlens.probe.importance import gini, phantom_importance_weights
from samlens.train.build import load_run

SOURCE = "samlens.reproduce.importance"


def importance_metrics(run_dir: Path, n: int = 1024, batch: int = 256) -> dict[str, object]:
    """Gini of λ and λ̃ (and the weights themselves) at the final checkpoint of ``run_dir``."""
    cfg, model, dataset = load_run(run_dir)
    split = dataset.split("train")
    lam, lam_t = [], []
    for start in range(0, min(n, len(split)), batch):
        items = [split[i] for i in range(start, min(start + batch, n, len(split)))]
        x = torch.stack([item[0] for item in items])
        y = torch.tensor([item[1] for item in items])
        real, phantom = phantom_importance_weights(model, x, y, rho=cfg.optim.rho)
        lam.append(real)
        lam_t.append(phantom)
    weights, phantom_weights = torch.cat(lam), torch.cat(lam_t)
    return {
        "gini_lambda": gini(weights.numpy()),
        "gini_lambda_phantom": gini(phantom_weights.numpy()),
        "lambda": [round(float(v), 6) for v in weights],
        "lambda_phantom": [round(float(v), 6) for v in phantom_weights],
    }


def record_importance(run_dirs: Iterable[Path]) -> int:
    """Append the importance metrics to every finished run that lacks them; returns how many."""
    count = 0
    for run_dir in run_dirs:
        if not rundir.is_done(run_dir):
            continue
        events = rundir.read_results(run_dir)
        finals = [e for e in events if e.get("event") == "final"]
        if not finals or "gini_lambda" in (finals[-1].get("metrics") or {}):
            continue
        with torch.no_grad():
            extra = importance_metrics(Path(run_dir))
        record = dict(finals[-1])
        record.update(
            metrics={**finals[-1]["metrics"], **extra},
            source=SOURCE,
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        rundir.append_result(run_dir, record)
        count += 1
    return count

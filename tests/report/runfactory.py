"""Hand-written run directories with known numbers, laid out like the runner's output."""

from __future__ import annotations

import json
from pathlib import Path

from samlens.train.config import config_hash, dump_config, flatten_config, load_config

# (optimizer, rho, seed) -> final metrics. Chosen by hand so tests can recompute mean ± SE.
FINAL = {
    ("sgd", None, 0): {"probe_acc_label": 0.90, "probe_acc_other": 0.60, "test_acc": 0.91},
    ("sgd", None, 1): {"probe_acc_label": 0.92, "probe_acc_other": 0.64, "test_acc": 0.93},
    ("sgd", None, 2): {"probe_acc_label": 0.91, "probe_acc_other": 0.59, "test_acc": 0.92},
    ("sam", 0.05, 0): {"probe_acc_label": 0.93, "probe_acc_other": 0.70, "test_acc": 0.94},
    ("sam", 0.05, 1): {"probe_acc_label": 0.95, "probe_acc_other": 0.74, "test_acc": 0.95},
    ("sam", 0.05, 2): {"probe_acc_label": 0.94, "probe_acc_other": 0.69, "test_acc": 0.93},
    ("sam", 0.1, 0): {"probe_acc_label": 0.92, "probe_acc_other": 0.78, "test_acc": 0.90},
    ("sam", 0.1, 1): {"probe_acc_label": 0.96, "probe_acc_other": 0.80, "test_acc": 0.92},
}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def group_metrics(seed: int, shift: float) -> dict[str, float]:
    accs = [0.95 - shift, 0.60 + 0.05 * seed + shift, 0.70 + shift, 0.97 - shift]
    out = {f"group_acc/{g}": a for g, a in enumerate(accs)}
    out["worst_group_acc"] = min(accs)
    out["train_weighted_mean_acc"] = 0.4 * accs[0] + 0.1 * accs[1] + 0.1 * accs[2] + 0.4 * accs[3]
    return out


def write_run(
    root: Path, optim: str, rho: float | None, seed: int, *, status: str = "done", epochs: int = 3
) -> Path:
    overrides = {"optim.name": optim, "train.seed": seed, "train.epochs": epochs, "name": f"{optim}-{seed}"}
    if rho is not None:
        overrides["optim.rho"] = rho
    cfg = load_config(None, overrides)
    run_dir = root / config_hash(cfg)
    run_dir.mkdir(parents=True)
    dump_config(cfg, run_dir / "config.yaml")
    (run_dir / "meta.json").write_text(
        json.dumps(
            {"git": {"commit": COMMIT, "dirty": False}, "group_names": ["a0b0", "a0b1", "a1b0", "a1b1"]}
        )
    )
    flat = flatten_config(cfg)
    final = FINAL.get((optim, rho, seed), {"probe_acc_label": 0.5, "probe_acc_other": 0.5, "test_acc": 0.5})
    shift = 0.0 if optim == "sgd" else (rho or 0.0)
    lines = []
    for epoch in range(1, epochs + 1):
        frac = epoch / epochs
        lines.append(
            {
                "event": "eval",
                "step": 10 * epoch,
                "epoch": epoch,
                "time": 1.0 * epoch,
                "metrics": {"train_loss": 1.0 / epoch, "test_acc": final["test_acc"] * frac},
                "config": flat,
            }
        )
        lines.append(
            {
                "event": "probe",
                "step": 10 * epoch,
                "epoch": epoch,
                "time": 1.0 * epoch,
                "metrics": {k: v * (0.8 + 0.2 * frac) for k, v in final.items() if k.startswith("probe")},
                "config": flat,
            }
        )
    if status == "failed":
        lines.append(
            {
                "event": "failed",
                "step": 10 * epochs,
                "epoch": epochs,
                "time": 9.0,
                "metrics": {"reason": "loss is NaN"},
                "config": flat,
            }
        )
        (run_dir / "failed").write_text("loss is NaN at step 30\n")
    else:
        metrics = {**final, **group_metrics(seed, shift)}
        metrics["lambda"] = [0.01 * (i + 1) ** (2 if optim == "sgd" else 1) for i in range(50)]
        metrics["lambda_phantom"] = [0.02 * (i + 1) for i in range(50)]
        lines.append(
            {
                "event": "final",
                "step": 10 * epochs,
                "epoch": epochs,
                "time": 10.0,
                "metrics": metrics,
                "config": flat,
            }
        )
    with open(run_dir / "results.jsonl", "w") as fh:
        for line in lines:
            fh.write(json.dumps(line) + "\n")
    if status == "done":
        (run_dir / "done").write_text("")
    return run_dir

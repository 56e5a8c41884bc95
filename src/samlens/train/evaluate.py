"""In-distribution evaluation of a model's own head: accuracy, loss and group metrics.

All group metrics come from ``samlens.probe.metrics`` so they mean the same as in probes
and reports.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samlens.probe import metrics
from samlens.train.bn import recompute_bn_stats


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    device: torch.device,
    batch_size: int = 256,
    channels_last: bool = False,
    bf16: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(predicted labels, true labels, mean cross-entropy) over ``dataset`` in order."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    was_training = model.training
    model.eval()
    preds, labels, loss_sum, n = [], [], 0.0, 0
    try:
        for x, y, _ in loader:
            x, y = x.to(device), y.to(device)
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            n += len(y)
            preds.append(logits.argmax(1).cpu())
            labels.append(y.cpu())
    finally:
        model.train(was_training)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy(), loss_sum / max(n, 1)


def evaluate(
    model: nn.Module,
    dataset: Any,
    *,
    device: torch.device,
    splits: tuple[str, ...] = ("val", "test"),
    channels_last: bool = False,
    bf16: bool = False,
    bn_stats: str = "running",
) -> dict[str, float]:
    """``{split}_acc`` and ``{split}_loss`` for each split, and group metrics on ``test``.

    ``bn_stats="recompute"`` first replaces BatchNorm running statistics by their average over
    the training split (``samlens.train.bn``; in place, so later probes and the checkpoint use
    them too); ``"running"`` evaluates with the statistics as they are.

    Group metrics: ``group_acc/<g>`` (g = group id), ``worst_group_acc``, ``mean_acc`` and
    ``train_weighted_mean_acc`` (test group accuracies weighted by training-group frequency),
    plus ``val_worst_group_acc`` for model selection.
    """
    if bn_stats == "recompute":
        recompute_bn_stats(model, dataset, device=device, channels_last=channels_last)
    out: dict[str, float] = {}
    train_groups = dataset.groups("train")
    for split in splits:
        if split not in dataset.splits or len(dataset.labels(split)) == 0:
            continue
        pred, true, loss = predict(
            model, dataset.split(split), device=device, channels_last=channels_last, bf16=bf16
        )
        out[f"{split}_acc"] = metrics.mean_accuracy(true, pred)
        out[f"{split}_loss"] = loss
        groups = dataset.groups(split)
        present = np.unique(groups)
        if len(present) < 2:
            continue
        per_group = metrics.per_group_accuracy(true, pred, groups)
        if split == "test":
            out.update({f"group_acc/{g}": acc for g, acc in per_group.items()})
            out["worst_group_acc"] = min(per_group.values())
            out["mean_acc"] = out["test_acc"]
            if set(np.unique(train_groups)) <= set(per_group):
                out["train_weighted_mean_acc"] = metrics.train_weighted_mean_accuracy(
                    per_group, train_groups, dataset.num_groups
                )
        elif split == "val":
            out["val_worst_group_acc"] = min(per_group.values())
    return out

"""Summaries of a dataset for people: split sizes, group counts, correlation, an example grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samlens._optional import require
from samlens.data.base import SpuriousDataset
from samlens.rundir import atomic_save


def cramers_v(labels: np.ndarray, others: np.ndarray, num_classes: int, num_other: int) -> float:
    """Association between label and other attribute: 0 = independent, 1 = one determines the other."""
    n = len(labels)
    if n == 0 or min(num_classes, num_other) < 2:
        return float("nan")
    table = np.zeros((num_classes, num_other))
    np.add.at(table, (labels, others), 1)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    mask = expected > 0
    chi2 = float(((table - expected) ** 2 / np.where(mask, expected, 1))[mask].sum())
    rows, cols = int((table.sum(1) > 0).sum()), int((table.sum(0) > 0).sum())
    k = min(rows, cols) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 else float("nan")


def summary_text(ds: SpuriousDataset, max_groups: int = 40) -> str:
    """Split sizes, group counts per split, and label/other association per split, as plain text."""
    lines = [
        f"dataset {ds.name}: {ds.num_classes} classes, input {tuple(ds.input_shape)}, "
        f"attributes label={ds.attribute_names[0]!r} other={ds.attribute_names[1]!r} ({ds.num_other} values)",
        "",
    ]
    width = max(12, *(len(s) for s in ds.splits))
    header = "group".ljust(36) + "".join(s.rjust(width) for s in ds.splits)
    lines.append(header)
    counts = {s: ds.group_counts(s) for s in ds.splits}
    shown = ds.group_names[:max_groups]
    for g, name in enumerate(shown):
        lines.append(f"{g:>3} {name[:32]:<32}" + "".join(str(counts[s][g]).rjust(width) for s in ds.splits))
    if ds.num_groups > len(shown):
        lines.append(f"    ... {ds.num_groups - len(shown)} more groups")
    lines.append("total".ljust(36) + "".join(str(int(counts[s].sum())).rjust(width) for s in ds.splits))
    if ds.num_other == ds.num_classes:
        agree = [ds.agreement(s) for s in ds.splits]
        lines.append("label==other".ljust(36) + "".join(f"{a:.3f}".rjust(width) for a in agree))
    assoc = [cramers_v(ds.labels(s), ds.others(s), ds.num_classes, ds.num_other) for s in ds.splits]
    lines.append("cramers_v".ljust(36) + "".join(f"{v:.3f}".rjust(width) for v in assoc))
    return "\n".join(lines) + "\n"


def _displayable(image: torch.Tensor) -> np.ndarray:
    # Normalised images (ImageNet statistics) are rescaled per image so that they look like photos.
    x = image.detach().float()
    if x.min() < 0 or x.max() > 1:
        x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    if x.shape[0] == 2:  # two-colour images (ColoredMNIST): red/green, empty blue
        x = torch.cat([x, torch.zeros_like(x[:1])])
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def example_grid(
    ds: SpuriousDataset, path: str | Path, split: str = "train", per_group: int = 8, max_groups: int = 16
) -> None:
    """Save a PNG with one row of example images per group (empty groups are labelled as such)."""
    with require("report"):
        from matplotlib.figure import Figure  # no pyplot: no backend is set

    groups = ds.groups(split)
    view = ds.split(split)
    rng = np.random.default_rng(0)
    num_rows = min(ds.num_groups, max_groups)
    _, h, w = ds.input_shape
    scale = 1.1 / max(h, w)
    size = (per_group * scale * w + 2.4, num_rows * scale * h + 0.4)
    fig = Figure(figsize=size)
    axes = fig.subplots(num_rows, per_group, squeeze=False)
    for g in range(num_rows):
        members = np.flatnonzero(groups == g)
        chosen = rng.choice(members, size=min(per_group, len(members)), replace=False) if len(members) else []
        for j, ax in enumerate(axes[g]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(chosen):
                ax.imshow(_displayable(view[int(chosen[j])][0]), cmap="gray", vmin=0, vmax=1)
        label = f"{ds.group_names[g]}\n(n={len(members)})"
        axes[g][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(f"{ds.name} / {split}: examples per group", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda fh: fig.savefig(fh, format="png", dpi=100))

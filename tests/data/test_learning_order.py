"""Which mnist5k_dominoes block does SGD learn first? The docstring and docs/datasets.md claim: the top
(8x8-digit) block, while the MNIST block stays unused. This measures it on the probe split, where the two
blocks are independent, so the predictions reveal which block the network relies on."""

import numpy as np
import pytest
import torch
from torch import nn

from samlens.data import get_dataset


def _train_and_track(seed: int, epochs: int = 6) -> list[tuple[int, float, float]]:
    torch.manual_seed(seed)
    ds = get_dataset("mnist5k_dominoes", seed=seed)
    x, y = ds.images("train"), torch.as_tensor(ds.labels("train"))
    probe_x = ds.images("probe_test")
    probe_label, probe_other = (
        torch.as_tensor(ds.labels("probe_test")),
        torch.as_tensor(ds.others("probe_test")),
    )
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((4, 2)),
        nn.Flatten(), nn.Linear(256, 2),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    history, step = [], 0
    for _ in range(epochs):
        for batch in torch.randperm(len(y), generator=generator).split(32):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step % 5 == 0:
                with torch.no_grad():
                    pred = model(probe_x).argmax(1)
                history.append(
                    (
                        step,
                        float((pred == probe_label).float().mean()),
                        float((pred == probe_other).float().mean()),
                    )
                )
    return history


@pytest.mark.slow
def test_sgd_learns_the_digits8x8_block_first():
    history = _train_and_track(seed=0)
    steps = np.array([h[0] for h in history])
    mnist_acc = np.array([h[1] for h in history])
    top_acc = np.array([h[2] for h in history])
    first_top = steps[np.argmax(top_acc > 0.8)] if (top_acc > 0.8).any() else np.inf
    first_mnist = steps[np.argmax(mnist_acc > 0.8)] if (mnist_acc > 0.8).any() else np.inf
    assert first_top < first_mnist
    assert top_acc[-1] > 0.9 and mnist_acc[-1] < 0.65

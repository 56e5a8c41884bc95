"""SAM vs SGD on real handwritten digits (scikit-learn's 8x8 digits), in well under a minute.

Trains the same MLP from the same initialisation with the same data order twice — once
with SGD, once with SAM wrapped around the same SGD — and prints test accuracy, test
loss and the final training loss of each. Run: ``python examples/sam_vs_sgd.py``.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from samlens.models import get_model
from samlens.optim import build_optimizer


def load() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return x_tr, y_tr, x_te, y_te


def train(name: str, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int = 15) -> float:
    options = {"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4}
    if name == "sam":
        options["rho"] = 0.05
    opt = build_optimizer(name, model, **options)
    order = torch.Generator().manual_seed(0)
    loss = torch.tensor(float("nan"))
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(128):
            xb, yb = x[idx], y[idx]

            def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                opt.zero_grad(set_to_none=True)
                batch_loss = F.cross_entropy(model(xb), yb)
                batch_loss.backward()
                return batch_loss

            loss = opt.step(closure)
    return float(loss.detach())


def main() -> None:
    torch.set_num_threads(1)  # the model is tiny: extra threads only add synchronisation
    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te = load()
    initial = get_model("mlp", num_classes=10, input_shape=(64,), hidden=[128])
    print(f"{'optimizer':<9}  {'test acc':>8}  {'test loss':>9}  {'last train loss':>15}  {'seconds':>7}")
    for name in ("sgd", "sam"):
        model = copy.deepcopy(initial)  # identical initialisation for both
        start = time.perf_counter()
        last = train(name, model, x_tr, y_tr)
        with torch.no_grad():
            logits = model(x_te)
        acc = (logits.argmax(1) == y_te).float().mean().item()
        test_loss = F.cross_entropy(logits, y_te).item()
        print(
            f"{name:<9}  {acc:>8.4f}  {test_loss:>9.4f}  {last:>15.4f}  {time.perf_counter() - start:>7.1f}"
        )


if __name__ == "__main__":
    main()

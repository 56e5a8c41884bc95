"""SAM under PyTorch Lightning, automatic and manual optimisation, equals a plain SAM loop."""

import copy

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pl = pytest.importorskip("lightning.pytorch")  # the `lightning` extra; CI installs it

from samlens.integrations.lightning import sam_manual_step  # noqa: E402
from samlens.optim import SAM  # noqa: E402

RHO, LR, STEPS, BATCH = 0.3, 0.2, 3, 8


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS * BATCH, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return TensorDataset(x, y)


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def make_sam(model: nn.Module) -> SAM:
    return SAM(torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9), rho=RHO, model=model)


class Automatic(pl.LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0

    def training_step(self, batch, batch_idx):
        self.calls += 1
        x, y = batch
        return nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return make_sam(self.model)


class Manual(Automatic):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.automatic_optimization = False
        self.clean_losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = sam_manual_step(self, lambda: nn.functional.cross_entropy(self.model(x), y))
        self.clean_losses.append(loss.item())


def fit(module: pl.LightningModule) -> pl.LightningModule:
    trainer = pl.Trainer(
        max_steps=STEPS,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    trainer.fit(module, DataLoader(data(), batch_size=BATCH, shuffle=False))
    assert trainer.global_step == STEPS
    return module


def reference(model: nn.Module) -> tuple[nn.Module, SAM, list[float]]:
    """The plain-loop SAM step over the same batches."""
    opt = make_sam(model)
    losses = []
    for x, y in DataLoader(data(), batch_size=BATCH, shuffle=False):

        def closure(x=x, y=y):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        losses.append(opt.step(closure).item())
    return model, opt, losses


def assert_same(a: nn.Module, b: nn.Module) -> None:
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)


@pytest.mark.slow
def test_automatic_optimisation_equals_plain_sam_loop():
    init = net()
    module = fit(Automatic(copy.deepcopy(init)))
    expected, ref_opt, _ = reference(copy.deepcopy(init))
    assert_same(module.model, expected)
    sam = module.trainer.optimizers[0]
    assert sam.sam_steps == STEPS == ref_opt.sam_steps
    assert module.calls == 2 * STEPS  # Lightning's closure ran twice per step
    # Not plain SGD: one SGD step per batch from the same start ends elsewhere.
    sgd = copy.deepcopy(init)
    base = torch.optim.SGD(sgd.parameters(), lr=LR, momentum=0.9)
    for x, y in DataLoader(data(), batch_size=BATCH, shuffle=False):
        base.zero_grad()
        nn.functional.cross_entropy(sgd(x), y).backward()
        base.step()
    assert max((p - q).abs().max().item() for p, q in zip(sgd.parameters(), expected.parameters())) > 1e-4


@pytest.mark.slow
def test_manual_optimisation_helper_equals_plain_sam_loop():
    init = net()
    module = fit(Manual(copy.deepcopy(init)))
    expected, ref_opt, ref_losses = reference(copy.deepcopy(init))
    assert_same(module.model, expected)
    assert module.trainer.optimizers[0].sam_steps == STEPS
    assert module.clean_losses == pytest.approx(ref_losses, abs=1e-6)

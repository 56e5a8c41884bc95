"""The SAM variants under DDP (2 gloo processes): replicas stay identical; global ascent is full-batch."""

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn import functional as F

from samlens.optim import build_optimizer

from . import _ddp_variant_worker as worker
from .helpers import batch, flat, mlp


def _run(tmp_path, name, ascent):
    prefix = str(tmp_path / "rank")
    mp.spawn(worker.run, args=(2, str(tmp_path / "init"), name, ascent, prefix), nprocs=2, join=True)
    return [torch.load(f"{prefix}{r}.pt", weights_only=True)["params"] for r in range(2)]


def _full_batch(name):
    model = mlp()
    opt = build_optimizer(name, model, rho=0.1, lr=0.1, momentum=0.9)
    x, y = batch(n=16)
    for _ in range(worker.STEPS):

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    return flat(model)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gsam", "wsam", "looksam"])
def test_variant_under_ddp(tmp_path, name):
    # Per-device ascent: the clean gradient that GSAM/WSAM/LookSAM fold into the update is averaged
    # over devices, so the replicas do not drift apart.
    r0, r1 = _run(tmp_path, name, "per_device")
    assert torch.equal(r0, r1)
    (tmp_path / "global").mkdir()
    g0, g1 = _run(tmp_path / "global", name, "global")
    assert torch.equal(g0, g1)
    assert (g0 - _full_batch(name)).abs().max() < 1e-6

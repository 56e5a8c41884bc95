"""SAM under DDP with 2 CPU processes (gloo) against single-process references."""

import pytest
import torch
import torch.multiprocessing as mp
from torch.nn import functional as F

from samlens.optim import SAM, examples_per_perturbation

from . import _ddp_worker
from .helpers import batch, flat, mlp


def _run_ddp(tmp_path, ascent):
    init_file = tmp_path / "init"
    prefix = str(tmp_path / "rank")
    mp.spawn(_ddp_worker.run, args=(2, str(init_file), ascent, prefix), nprocs=2, join=True)
    return [torch.load(f"{prefix}{r}.pt", weights_only=True) for r in range(2)]


def _single_process(mode):
    model = mlp()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), rho=0.1)
    x, y = batch(n=16)
    chunks = list(zip(x.chunk(2), y.chunk(2)))
    for _ in range(_ddp_worker.STEPS):
        if mode == "per_micro_batch":

            def closure(i):
                loss = F.cross_entropy(model(chunks[i][0]), chunks[i][1])
                loss.backward()
                return loss

            opt.accumulate_step(closure, 2, "per_micro_batch")
        else:

            def full():
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss

            opt.step(full)
    return flat(model)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ascent", "reference", "m"), [("per_device", "per_micro_batch", 8), ("global", "full", 16)]
)
def test_ddp_matches_single_process_reference(tmp_path, ascent, reference, m):
    r0, r1 = _run_ddp(tmp_path, ascent)
    assert torch.equal(r0["params"], r1["params"])  # identical across ranks
    assert r0["m"] == m
    expected = _single_process(reference)
    assert (r0["params"] - expected).abs().max() < 1e-6
    # And the two modes really differ (per-device ascent is not full-batch SAM).
    other = _single_process("full" if reference == "per_micro_batch" else "per_micro_batch")
    assert (r0["params"] - other).abs().max() > 1e-5


def test_examples_per_perturbation():
    assert examples_per_perturbation(32, 4, "per_device") == 32
    assert examples_per_perturbation(32, 4, "global") == 128
    with pytest.raises(ValueError, match="unknown ascent mode"):
        examples_per_perturbation(32, 4, "sideways")

"""Worker for the 2-process gloo test of the SAM variants (a module, so that spawn can import it)."""

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from samlens.optim import build_optimizer, ddp_sam_step

from .helpers import batch, finish_ddp_worker, flat, mlp

STEPS = 4


def run(rank: int, world: int, init_file: str, name: str, ascent: str, out_prefix: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = DDP(mlp())
        opt = build_optimizer(name, model.module, rho=0.1, lr=0.1, momentum=0.9)
        x, y = batch(n=16)
        xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xs), ys)
            loss.backward()
            return loss

        for _ in range(STEPS):
            ddp_sam_step(opt, model, closure, ascent=ascent, per_device_batch=len(xs))
        torch.save({"params": flat(model.module)}, f"{out_prefix}{rank}.pt")
    except BaseException:
        dist.destroy_process_group()
        raise
    finish_ddp_worker()

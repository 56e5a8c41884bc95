"""Worker for the 2-process gloo test of the decomposition optimizers (a module, so spawn can import it)."""

import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from samlens.models import get_model
from samlens.optim.decomposition import Decomposition

from .helpers import finish_ddp_worker

STEPS = 4


def model_and_batch():
    torch.manual_seed(0)
    model = get_model("mlp", 3, (6,), hidden=(16, 8))
    g = torch.Generator().manual_seed(1)
    return model, torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)


def run(rank: int, world: int, init_file: str, variants: list[str], out_prefix: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        out = {}
        for variant in variants:
            model, x, y = model_and_batch()
            ddp = DDP(model)
            base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            opt = Decomposition(model, base, variant, rho=0.2)  # single pass
            xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]

            def closure(opt=opt, ddp=ddp, xs=xs, ys=ys):
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(ddp(xs), ys)
                loss.backward()
                return loss

            for _ in range(STEPS):
                opt.step(closure, ascent_context=ddp.no_sync())
            out[variant] = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        torch.save(out, f"{out_prefix}{rank}.pt")
    except BaseException:
        dist.destroy_process_group()
        raise
    finish_ddp_worker()

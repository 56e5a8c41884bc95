"""Batches of a training split through ``torch.utils.data.DataLoader``, in the runner's order.

The runner decides which examples form each batch (``epoch_batches``: a permutation drawn from
the run seed and the epoch only), so paired runs see the same data and a resumed run continues
where it stopped. :class:`BatchLoader` only decodes those batches, in ``data.num_workers``
worker processes when asked, and keeps the order: a batch sampler yields exactly the given
index lists, and the DataLoader returns batches in sampler order whatever the worker count.

Random train transforms (augmentation) draw from a torch generator seeded per batch from
(run seed, epoch, batch position), inside a forked RNG state. The augmentations of a batch
are then the same for any number of workers and after a resume, and loading never consumes
the training process's global RNG (which drives the model's own randomness).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate


def batch_seed(seed: int, epoch: int, position: int) -> int:
    """The RNG seed of one batch's train transforms, from the run seed, epoch and batch position."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(epoch), int(position)]).generate_state(2)
    return (int(state[0]) << 32 | int(state[1])) & (2**63 - 1)


class _BatchList(Sampler[list[int]]):
    """Yields the current epoch's batches, each as ``[seed, index, index, ...]``.

    The list is replaced before every epoch; the DataLoader asks for a new iterator each
    epoch, so persistent workers keep running across epochs.
    """

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _SeededBatches(Dataset):
    """Fetches a whole batch (``__getitems__``) with the transforms' RNG seeded by the batch's seed."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    def __getitems__(self, keys: list[int]) -> list[Any]:
        seed, indices = keys[0], keys[1:]
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed (and not restore) CUDA's.
            torch.default_generator.manual_seed(seed)
            return [self.dataset[i] for i in indices]


def collate_images_labels(
    items: Sequence[tuple[torch.Tensor, int, Any]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, label, attrs)`` items → ``(images [N, C, H, W], labels [N])``; attrs are not needed."""
    # default_collate stacks into shared memory inside a worker, saving a copy per batch.
    return default_collate([item[0] for item in items]), torch.tensor([item[1] for item in items])


class BatchLoader:
    """Loads given index batches of a dataset, in order, optionally in worker processes.

    ``num_workers > 0`` starts that many worker processes once and keeps them for the whole
    run (``persistent_workers``); on CUDA batches go through pinned memory.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.sampler = _BatchList()
        workers = int(num_workers)
        self.pin = self.device.type == "cuda"
        self.loader = DataLoader(
            _SeededBatches(dataset),
            batch_sampler=self.sampler,
            num_workers=workers,
            collate_fn=collate_images_labels,
            pin_memory=self.pin,
            persistent_workers=workers > 0,
            prefetch_factor=prefetch_factor if workers > 0 else None,
            # A private generator: otherwise each epoch's iterator draws its base seed from the
            # global RNG and shifts the model's random stream.
            generator=torch.Generator(),
        )

    def epoch(
        self, batches: Sequence[Sequence[int]], *, seed: int, epoch: int, start: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x, y)`` on the device for each of ``batches``; ``start`` = position of the first one.

        ``batches`` may be the tail of an epoch (a resume), with ``start`` the number skipped, so
        each batch keeps the augmentation seed of its position in the full epoch.
        """
        self.sampler.batches = [
            [batch_seed(seed, epoch, start + k), *map(int, indices)] for k, indices in enumerate(batches)
        ]
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=self.pin)
            y = y.to(self.device, non_blocking=self.pin)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y

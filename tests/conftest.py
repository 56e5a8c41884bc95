import os

import pytest
import torch

# Tests run on 2 cores; more threads only add contention and non-determinism.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield

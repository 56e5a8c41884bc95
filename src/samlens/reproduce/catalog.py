"""The paper's experiments and their offline stand-ins, by name.

Each entry names a file in ``configs/paper`` (a sweep grid spec, or for the toy the options of
``samlens toy``), what it needs on disk and how ``--quick`` shrinks it. The grids themselves
hold the hyperparameters and say why; this table only holds what the grid format cannot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samlens.errors import ConfigError

#: Environment variable that points at a ``configs/paper`` folder outside a source checkout.
CONFIG_ENV = "SAMLENS_PAPER_CONFIGS"


@dataclass(frozen=True)
class Reproduction:
    """One named reproduction.

    ``claim`` states the hypothesis the grid tests (not a result; the verdicts are in
    docs/reproduction.md and in each report). ``data_files`` (real datasets only) says what
    ``--data-dir`` must hold. ``quick_base`` are dotted overrides applied to every point under
    ``--quick``; ``quick_grid`` replaces the values of grid keys (in every sub-grid that has the
    key); ``quick_subgrids`` (when > 0) keeps only that many leading sub-grids under ``--quick``
    (the SGD-vs-SAM ones, so CI skips the extra optimizers).
    ``hard_only``: the dataset has ``shuffle_easy``, so the grid gets a hard-only ceiling
    (``samlens.reproduce.headroom``); every grid gets an untrained floor.
    """

    name: str
    file: str
    claim: str
    kind: str = "sweep"  # "sweep" (a grid spec) or "toy" (options of `samlens toy`)
    data_files: str | None = None
    quick_base: dict[str, Any] = field(default_factory=dict)
    quick_grid: dict[str, list[Any]] = field(default_factory=dict)
    hard_only: bool = False
    quick_subgrids: int = 0

    @property
    def needs_data(self) -> bool:
        return self.data_files is not None


_QUICK_SEEDS = {"train.seed": [0, 1]}
_QUICK_RHO = {"optim.rho": [0.05]}
# Two radii, so a quick report still draws its rho curve.
_QUICK_SWEEP_RHO = {"optim.rho": [0.1, 0.5]}
_QUICK_TRAIN = {"train.epochs": 1, "probe.every": 0}
_QUICK_IMAGES = {"data.options.train_per_class": 200, "data.options.eval_per_class": 100}

_DOMAINBED_FILES = "{dir}/{name}/<domain>/<class>/<image> for the domains {domains} (DomainBed layout)"


def _domainbed(name: str, domains: str) -> Reproduction:
    return Reproduction(
        name=f"domainbed_{name.lower()}",
        file=f"domainbed_{name.lower()}.yaml",
        claim="hypothesis: SAM raises held-out-domain accuracy and transfer-probe accuracy (DomainBed)",
        data_files=_DOMAINBED_FILES.format(dir="DIR", name=name, domains=domains),
        quick_base={"train.steps": 5, "data.options.image_size": 64, "data.batch_size": 8},
        quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
    )


def _rho_sweep(name: str, claim: str, **quick: Any) -> Reproduction:
    """A paired ρ sweep on a dominoes stand-in (floor and ceiling included); ``--quick`` keeps its
    first two sub-grids (SGD and SAM) at two radii, with the dotted overrides ``quick`` on top."""
    quick_base = {**_QUICK_TRAIN, **_QUICK_IMAGES, **quick}
    return Reproduction(
        name=name,
        file=f"{name}.yaml",
        claim=claim,
        quick_base=quick_base,
        quick_grid={**_QUICK_SEEDS, **_QUICK_SWEEP_RHO},
        hard_only=True,
        quick_subgrids=2,
    )


REPRODUCTIONS: dict[str, Reproduction] = {
    r.name: r
    for r in [
        Reproduction(
            name="toy",
            file="toy.yaml",
            kind="toy",
            claim="hypothesis: importance weighting and learning-rate scaling each raise the hard/easy "
            "weight ratio (toy)",
            quick_base={"steps": 100, "seeds": 2, "eval_every": 50},
        ),
        Reproduction(
            name="cifar_mnist",
            file="cifar_mnist.yaml",
            claim="hypothesis: SAM raises the probe accuracy of the hard feature (CIFAR) on CIFAR-MNIST",
            data_files="DIR/cifar-10-batches-py/ (CIFAR-10 python batches) and the MNIST IDX files "
            "(in DIR, DIR/raw or DIR/MNIST/raw)",
            quick_base={"train.epochs": 1, "train.steps": 5},
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
        ),
        Reproduction(
            name="waterbirds",
            file="waterbirds.yaml",
            claim="hypothesis: SAM raises the probe accuracy of the hard feature (bird) and DFR "
            "worst-group accuracy",
            data_files="DIR/metadata.csv and the 200 species folders of waterbird_complete95_forest2water2",
            quick_base={"train.steps": 5, "data.options.image_size": 64, "data.batch_size": 8},
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
        ),
        Reproduction(
            name="celeba",
            file="celeba.yaml",
            claim="hypothesis: SAM lowers the probe error of both features (blond, male) on CelebA",
            data_files="DIR/img_align_celeba/, DIR/list_attr_celeba.txt and DIR/list_eval_partition.txt "
            "(or the Kaggle .csv files)",
            quick_base={"train.steps": 5, "data.options.image_size": 64, "data.batch_size": 8},
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
        ),
        _domainbed("PACS", "art_painting, cartoon, photo, sketch"),
        _domainbed("VLCS", "Caltech101, LabelMe, SUN09, VOC2007"),
        _domainbed("OfficeHome", "Art, Clipart, Product, Real World"),
        _domainbed("TerraIncognita", "location_100, location_38, location_43, location_46"),
        _domainbed("DomainNet", "clipart, infograph, painting, quickdraw, real, sketch"),
        Reproduction(
            name="mnist_fashion_dominoes",
            file="mnist_fashion_dominoes.yaml",
            claim="stand-in for CIFAR-MNIST; hypothesis: SAM raises the hard feature's (Fashion) probe "
            "accuracy within its untrained-to-hard-only range",
            quick_base={**_QUICK_TRAIN, **_QUICK_IMAGES},
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
            hard_only=True,
        ),
        _rho_sweep(
            "mnist_fashion4_dominoes",
            "stand-in for CIFAR-MNIST with a wide floor-to-ceiling range; hypothesis: SAM raises "
            "the hard feature's (four Fashion tops) probe accuracy within that range",
            **{"data.options.probe_per_class": 250},
        ),
        _rho_sweep(
            "fmnist_mnist",
            "the paper's FMNIST-MNIST (5-class) on its CNN; hypothesis: SAM raises the hard "
            "feature's (Fashion) probe accuracy, measured per rho as a paired difference from SGD",
            # The probe on the full-width paper CNN's 1,024 features costs minutes per run: CI runs
            # the pipeline on a quarter-width network and small probe splits.
            **{"data.options.probe_per_class": 100, "model.options.width": 0.25},
        ),
        _rho_sweep(
            "fmnist_mnist_small_cnn",
            "the paper's FMNIST-MNIST (5-class) on the small CNN; hypothesis: SAM raises the hard "
            "feature's (Fashion) probe accuracy, measured per rho as a paired difference from SGD",
            **{"data.options.probe_per_class": 250},
        ),
        Reproduction(
            name="fmnist_mnist_conditions",
            file="fmnist_mnist_conditions.yaml",
            claim="where SAM's effect on FMNIST-MNIST holds or vanishes; hypothesis: SAM's paired "
            "advantage holds at easy-block correlation 0.95/0.9 and at 3x the epochs, on the small CNN",
            quick_base={**_QUICK_TRAIN, **_QUICK_IMAGES, "data.options.probe_per_class": 250},
            quick_grid={**_QUICK_SEEDS, "train.epochs": [1], "data.options.correlation": [0.9]},
            hard_only=False,
            quick_subgrids=1,
        ),
        Reproduction(
            name="fmnist_mnist_conditions_paper_cnn",
            file="fmnist_mnist_conditions_paper_cnn.yaml",
            claim="where SAM's effect on FMNIST-MNIST holds or vanishes on the paper's CNN; hypothesis: "
            "SAM's paired advantage holds at easy-block correlation 0.95/0.9 and at 3x the epochs",
            quick_base={
                **_QUICK_TRAIN,
                **_QUICK_IMAGES,
                "data.options.probe_per_class": 100,
                "model.options.width": 0.25,
            },
            quick_grid={**_QUICK_SEEDS, "train.epochs": [1], "data.options.correlation": [0.9]},
            hard_only=False,
            quick_subgrids=1,
        ),
        Reproduction(
            name="textured_objects",
            file="textured_objects.yaml",
            claim="stand-in for Waterbirds; hypothesis: SAM raises the hard feature's (object) probe "
            "accuracy within its untrained-to-hard-only range",
            hard_only=True,
            # CI exercises the pipeline, not the pretrained network: EfficientNet-Lite0 spends
            # minutes per run on 2 CPU cores even at 32 px, the small CNN seconds.
            quick_base={
                **_QUICK_TRAIN,
                **_QUICK_IMAGES,
                "data.options.image_size": 32,
                "model.name": "small_cnn",
                "model.pretrained": None,
                "model.options.width": 16,
            },
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
        ),
        Reproduction(
            name="mnist5k_dominoes",
            file="mnist5k_dominoes.yaml",
            claim="pip-only data; hypothesis: SAM raises the hard feature's (MNIST digit) probe "
            "accuracy within its untrained-to-hard-only range",
            quick_base=dict(_QUICK_TRAIN),
            quick_grid={**_QUICK_SEEDS, **_QUICK_RHO},
            hard_only=True,
        ),
        Reproduction(
            name="mechanism",
            file="mechanism.yaml",
            claim="hypothesis: LSAM's importance weights are more even (lower Gini) at the phantom "
            "parameters; IW-only and LR-only each raise the hard feature's probe accuracy",
            quick_base={**_QUICK_TRAIN, **_QUICK_IMAGES},
            quick_grid=dict(_QUICK_SEEDS),
            hard_only=True,
        ),
    ]
}


def get_reproduction(name: str) -> Reproduction:
    """The reproduction called ``name``; an unknown name lists the valid ones."""
    if name not in REPRODUCTIONS:
        raise ConfigError(f"unknown reproduction {name!r}; valid choices: {', '.join(REPRODUCTIONS)}")
    return REPRODUCTIONS[name]


def config_dir() -> Path:
    """``configs/paper`` of the source checkout (or ``$SAMLENS_PAPER_CONFIGS``)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "configs" / "paper"


def config_path(reproduction: Reproduction) -> Path:
    path = config_dir() / reproduction.file
    if not path.is_file():
        raise ConfigError(
            f"{path} not found; run from a source checkout or set {CONFIG_ENV} to its configs/paper folder"
        )
    return path

"""The toy study (spec §4): SGD, SAM, LSAM, IW-only and LR-only on two redundant features.

The SAM family (GSAM, WSAM, LookSAM, F-SAM, random-direction SAM) runs at full SAM's radius
``sam_rho`` with its registered default options, so the variant axis asks which ascent raises the
hard feature at the same radius.

Each run trains one toy network with one optimizer and one seed on logistic loss with stochastic
mini-batches, and records over training the effective coefficients β (|β_hard| / |β_easy|), the
training loss, and at the end the per-feature probe accuracy and the importance-weight Gini of λ
(real parameters) and λ̃ (LSAM phantom head). ``rho_mode="relative"`` sets the radius relative to
the norm of the perturbed parameters (the head for LSAM/IW/LR, all weights for SAM) at every step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samlens._optional import require

with require("probe"):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

from torch import Tensor, nn

from samlens.data.toy import EASY, HARD, ToyData
from samlens.errors import ConfigError
from samlens.models import get_model
from samlens.models.toy import effective_coefficients
from samlens.optim.decomposition import RHO_MODES, Decomposition
from samlens.optim.perturbation import radius
from samlens.optim.registry import build_optimizer
from samlens.probe.importance import gini, phantom_importance_weights
from samlens.train.schema import build, check_fields, option, read_yaml
from samlens.validate import check_positive_int, check_type

#: The SAM family beyond the paper, built by name from the optimizer table at full SAM's radius.
TOY_VARIANTS = ("gsam", "wsam", "looksam", "fsam", "random_sam")
TOY_OPTIMIZERS = ("sgd", "sam", *TOY_VARIANTS, "lsam", "iw", "lr")
#: What ``samlens toy`` runs unless told otherwise: the paper's optimizers.
TOY_DEFAULT_OPTIMIZERS = ("sgd", "sam", "lsam", "iw", "lr")
TOY_MODELS = ("diag_linear", "two_layer_linear", "two_layer_relu")
LOSS_LEVELS = (0.6, 0.5, 0.4, 0.3, 0.2, 0.15, 0.1)


@dataclass
class ToyConfig:
    """Everything that defines a toy study; the defaults are the documented setting (docs/toy.md).

    Every field is checked on construction (type, domain, choices: ``samlens.train.config``).
    """

    model: str = option("diag_linear", choices=TOY_MODELS)
    width: int = option(20, domain="size")
    init_scale: float = option(0.1, domain="positive")
    data: ToyData = field(
        default_factory=lambda: ToyData(
            sigma_easy=0.2, mu_hard=0.5, sigma_hard=0.2, noise_dims=5, easy_spread=0.5
        )
    )
    n_train: int = option(256, domain="size")
    batch_size: int = option(16, domain="size")
    steps: int = option(600, domain="size")
    lr: float = option(0.2, domain="lr")
    momentum: float = option(0.0, domain="momentum")
    rho: float = option(0.4, domain="rho")
    sam_rho: float | None = option(0.1, domain="rho")
    rho_mode: str = option("absolute", choices=RHO_MODES)
    eval_every: int = option(50, domain="size")
    n_probe: int = option(1000, domain="size")
    optimizers: tuple[str, ...] = option(TOY_DEFAULT_OPTIMIZERS, choices=TOY_OPTIMIZERS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.optimizers or not self.seeds:
            raise ConfigError(f"a toy study needs at least one optimizer and one seed, got {self.to_dict()}")
        if self.batch_size > self.n_train:
            raise ConfigError(f"batch_size {self.batch_size} exceeds n_train {self.n_train}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizers"], d["seeds"] = list(self.optimizers), list(self.seeds)
        return d


#: ``samlens toy`` options that say how a study is run, not what it is: checked, not part of ToyConfig.
TOY_RUN_OPTIONS = {"no_figures": bool, "threads": int, "out": str}


def toy_config_from_options(options: Mapping[str, Any]) -> ToyConfig:
    """The ToyConfig of ``samlens toy`` options by name (underscores for dashes): ``seeds`` is a count,
    ``q`` and ``easy_spread`` set the data, ``optimizers`` is a list or a comma-separated string."""
    tree = dict(options)
    for key, tp in TOY_RUN_OPTIONS.items():
        if key in tree:
            check_type(key, tree.pop(key), tp)
    data = {key: tree.pop(key) for key in ("q", "easy_spread") if key in tree}
    if data:
        tree["data"] = {**asdict(ToyConfig().data), **data}
    if "seeds" in tree:
        tree["seeds"] = list(range(check_positive_int("seeds", tree["seeds"])))
    if isinstance(tree.get("optimizers"), str):
        tree["optimizers"] = [o.strip() for o in tree["optimizers"].split(",") if o.strip()]
    return build(ToyConfig, tree)


def load_toy_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> ToyConfig:
    """The ``toy`` mapping of a YAML file (``samlens toy`` options, as in configs/paper/toy.yaml),
    ``overrides`` on top; anything malformed is a one-line ``ConfigError`` naming the file."""
    options = read_yaml(path, "toy config").get("toy")
    if not isinstance(options, dict):
        raise ConfigError(f"toy config {str(path)!r}: expected a 'toy' mapping of `samlens toy` options")
    try:
        return toy_config_from_options({**options, **(overrides or {})})
    except ConfigError as err:
        raise ConfigError(f"toy config {str(path)!r}: {err}") from None


def _build_model(cfg: ToyConfig) -> nn.Module:
    options: dict[str, Any] = {"init_scale": cfg.init_scale}
    if cfg.model != "diag_linear":
        options["width"] = cfg.width
    return get_model(cfg.model, 1, (cfg.data.dim,), **options)


class _ToyOptimizer:
    """Uniform step(closure) over the toy optimizers; a full-weight ascent's radius follows its
    weights if relative."""

    def __init__(self, name: str, model: nn.Module, cfg: ToyConfig, seed: int) -> None:
        self.model, self.name, self.cfg = model, name, cfg
        self.full = name == "sam" or name in TOY_VARIANTS
        self.rho = cfg.rho if cfg.sam_rho is None or not self.full else cfg.sam_rho
        if not self.full:  # SGD too: the decomposition's plain step, as the toy has always run it
            base = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
            self.opt: torch.optim.Optimizer = Decomposition(
                model, base, variant=name, rho=cfg.rho, rho_mode=cfg.rho_mode
            )
            return
        options: dict[str, Any] = {"lr": cfg.lr, "momentum": cfg.momentum, "rho": self.rho}
        if name == "random_sam":
            options["seed"] = seed
        self.opt = build_optimizer(name, model, **options)

    def step(self, closure: Any) -> Tensor:
        if self.full and self.cfg.rho_mode == "relative":
            # Relative radius for a full-weight ascent: ρ·‖θ‖ over every parameter, the core's one rule.
            size = float(radius(self.rho, "relative", self.model.parameters()))
            for group in self.opt.param_groups:
                group["rho"] = size
                if "rho_max" in group:  # GSAM's schedule runs between these; at constant lr, rho_max
                    group["rho_max"] = group["rho_min"] = size
        return self.opt.step(closure)


def _logistic(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(model(x)[:, 0], y.float())


def _probe_accuracy(model: nn.Module, train: dict[str, Tensor], test: dict[str, Tensor]) -> dict[str, float]:
    """Balanced per-feature probe: standardized logistic regression on Φ, labels independent."""
    with torch.no_grad():
        f_train, f_test = model.features(train["x"]).numpy(), model.features(test["x"]).numpy()
    scaler = StandardScaler().fit(f_train)
    f_train, f_test = scaler.transform(f_train), scaler.transform(f_test)
    out = {}
    for key in ("easy", "hard"):
        clf = LogisticRegression(C=1.0, max_iter=500).fit(f_train, train[f"y_{key}"].numpy())
        out[key] = float(clf.score(f_test, test[f"y_{key}"].numpy()))
    return out


def _ratio(model: nn.Module, x: Tensor) -> tuple[float, float, float]:
    beta = effective_coefficients(model, x)
    b_easy, b_hard = abs(float(beta[EASY])), abs(float(beta[HARD]))
    return b_hard / max(b_easy, 1e-30), b_easy, b_hard


def run_one(cfg: ToyConfig, optimizer: str, seed: int) -> dict[str, Any]:
    """Train one (optimizer, seed) run; returns its record (history, probes, importance weights)."""
    torch.manual_seed(seed)
    data = cfg.data.sample(cfg.n_train, seed=1000 + seed)
    probe_train = cfg.data.sample(cfg.n_probe, seed=2000 + seed, independent=True)
    probe_test = cfg.data.sample(cfg.n_probe, seed=3000 + seed, independent=True)
    model = _build_model(cfg)
    opt = _ToyOptimizer(optimizer, model, cfg, seed)
    x, y = data["x"], data["y"]
    g = torch.Generator().manual_seed(seed)
    history: dict[str, list[float]] = {
        "step": [],
        "loss": [],
        "acc": [],
        "ratio": [],
        "beta_easy": [],
        "beta_hard": [],
    }

    def record(step: int) -> None:
        with torch.no_grad():
            logits = model(x)[:, 0]
            loss = F.binary_cross_entropy_with_logits(logits, y.float())
            acc = ((logits > 0).long() == y).float().mean()
        ratio, b_e, b_h = _ratio(model, x)
        for key, value in zip(history, (step, float(loss), float(acc), ratio, b_e, b_h)):
            history[key].append(value)

    record(0)
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, cfg.n_train, (cfg.batch_size,), generator=g)
        xb, yb = x[idx], y[idx]

        def closure(xb: Tensor = xb, yb: Tensor = yb) -> Tensor:
            opt.opt.zero_grad(set_to_none=True)
            loss = _logistic(model, xb, yb)
            loss.backward()
            return loss

        opt.step(closure)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            record(step)
    if not math.isfinite(history["loss"][-1]):
        raise ConfigError(f"toy run {optimizer}/seed {seed} diverged; lower lr or rho")
    lam, lam_t = phantom_importance_weights(model, x, y, cfg.rho, cfg.rho_mode)
    return {
        "optimizer": optimizer,
        "seed": seed,
        "history": history,
        "final": {
            "loss": history["loss"][-1],
            "acc": history["acc"][-1],
            "ratio": history["ratio"][-1],
            "gini_lambda": gini(lam.numpy()),
            "gini_lambda_phantom": gini(lam_t.numpy()),
            "probe": _probe_accuracy(model, probe_train, probe_test),
            "ratio_at_loss": ratio_at_loss(history),
        },
        "lambda": lam.tolist(),
        "lambda_phantom": lam_t.tolist(),
    }


def ratio_at_loss(
    history: dict[str, list[float]], levels: tuple[float, ...] = LOSS_LEVELS
) -> dict[str, float]:
    """|β_hard|/|β_easy| when the training loss first reaches each level (linear in log loss)."""
    loss, ratio = np.asarray(history["loss"]), np.asarray(history["ratio"])
    out = {}
    for level in levels:
        hit = np.flatnonzero(loss <= level)
        if hit.size == 0:
            continue
        k = int(hit[0])
        if k == 0:
            out[str(level)] = float(ratio[0])
            continue
        l0, l1 = math.log(loss[k - 1]), math.log(loss[k])
        t = 0.0 if l0 == l1 else (l0 - math.log(level)) / (l0 - l1)
        out[str(level)] = float(ratio[k - 1] + t * (ratio[k] - ratio[k - 1]))
    return out


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (std with ddof=1 over √n; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else 0.0
    return float(arr.mean()), se


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per optimizer: mean ± SE over seeds of the final measures."""
    rows = []
    for name in dict.fromkeys(r["optimizer"] for r in records):
        runs = [r["final"] for r in records if r["optimizer"] == name]
        row: dict[str, Any] = {"optimizer": name, "n": len(runs)}
        for key in ("ratio", "loss", "acc", "gini_lambda", "gini_lambda_phantom"):
            row[key] = mean_se([r[key] for r in runs])
        for key in ("easy", "hard"):
            row[f"probe_{key}"] = mean_se([r["probe"][key] for r in runs])
        common = set.intersection(*(set(r["ratio_at_loss"]) for r in runs))
        if common:
            level = min(common, key=float)
            row["matched_loss"] = float(level)
            row["ratio_at_matched_loss"] = mean_se([r["ratio_at_loss"][level] for r in runs])
        rows.append(row)
    return rows


def run_study(cfg: ToyConfig, progress: Any = None) -> list[dict[str, Any]]:
    """All (optimizer, seed) runs of ``cfg``, in a fixed order."""
    records = []
    for seed in cfg.seeds:
        for name in cfg.optimizers:
            records.append(run_one(cfg, name, seed))
            if progress is not None:
                progress(records[-1])
    return records

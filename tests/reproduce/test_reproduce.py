import json
from pathlib import Path

import pytest
import torch
import yaml

from samlens import rundir
from samlens.errors import ConfigError
from samlens.probe.importance import gini, importance_weights
from samlens.reproduce import REPRODUCTIONS, get_reproduction, plan
from samlens.reproduce.catalog import config_dir, config_path
from samlens.reproduce.run import check_data_dir, load_spec, load_toy_options, quick_spec
from samlens.train.build import build_dataset, build_model, build_optimizer
from samlens.train.config import load_config
from samlens.train.runner import run_experiment

SWEEPS = [n for n, r in REPRODUCTIONS.items() if r.kind == "sweep"]
PAPER = ["cifar_mnist", "waterbirds", "celeba"] + [n for n in REPRODUCTIONS if n.startswith("domainbed_")]


def _plan(name, tmp_path, quick=False):
    data_dir = str(tmp_path) if get_reproduction(name).needs_data else None
    return plan(name, data_dir=data_dir, out=tmp_path / "out", quick=quick)


def test_every_config_file_is_in_the_catalog_and_back():
    files = {p.name for p in config_dir().glob("*.yaml")}
    assert files == {r.file for r in REPRODUCTIONS.values()}
    assert set(PAPER) | {"toy"} <= set(REPRODUCTIONS)
    assert len([n for n in PAPER if n.startswith("domainbed_")]) == 5


@pytest.mark.parametrize("name", SWEEPS)
def test_grid_expands_with_sgd_sam_rho_grid_and_seeds(name, tmp_path):
    _, spec, points = _plan(name, tmp_path)
    assert not (tmp_path / "out").exists()  # planning writes nothing
    optims = {p.config.optim.name for p in points}
    seeds = {p.config.train.seed for p in points}
    assert len(seeds) >= 3
    if name == "mechanism":
        assert optims == {"sgd", "lsam", "iw", "lr"}
    elif "_conditions" in name:
        # One radius; the conditions vary instead: correlation 0.95 / 0.9 at x1 epochs, 1.0 at x3.
        conditions = {
            (p.config.data.options["correlation"], p.config.train.epochs, p.config.model.name) for p in points
        }
        model = "paper_cnn" if name.endswith("_paper_cnn") else "small_cnn"
        assert conditions == {(0.95, 6, model), (0.9, 6, model), (1.0, 18, model)}
        assert optims == {"sgd", "sam"} and {p.config.optim.rho for p in points} == {0.2}
    else:
        # DomainBed's published baseline is plain Adam (the base SAM wraps there).
        baseline = "adam" if name.startswith("domainbed_") else "sgd"
        assert {baseline, "sam"} <= optims
        rhos = {p.config.optim.rho for p in points if p.config.optim.name == "sam"}
        assert len(rhos) >= 2
    # Every point is a full factorial over seeds: each (setting) has every seed.
    settings = {}
    for p in points:
        key = (p.config.optim.name, p.config.optim.rho, p.config.data.options.get("test_domain"))
        key += (p.config.data.options.get("correlation"), p.config.train.epochs, p.config.model.name)
        settings.setdefault(key, set()).add(p.config.train.seed)
    assert all(s == seeds for s in settings.values())


@pytest.mark.parametrize("name", PAPER)
def test_paper_grids_point_at_the_data_dir_and_build_their_optimizer(name, tmp_path):
    _, _, points = _plan(name, tmp_path)
    cfg = points[-1].config
    assert cfg.data.root == str(tmp_path)
    # The optimizer settings must be accepted by the registry (e.g. base adam with momentum given).
    model = torch.nn.Linear(3, 2)
    model.head = model  # LSAM-style optimizers look for a head; plain ones ignore it
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.Optimizer)


def test_domainbed_grids_leave_each_domain_out():
    from samlens.data.real.domainbed import LAYOUTS

    for dataset, (_, domains) in LAYOUTS.items():
        name = f"domainbed_{dataset.lower()}"
        spec = load_spec(get_reproduction(name), Path("/data"), quick=False)
        held_out = {d for g in spec.grids for d in g.get("data.options.test_domain", [])}
        assert held_out == set(domains), name


def test_quick_replaces_listed_grid_values_and_adds_base_overrides(tmp_path):
    reproduction = get_reproduction("mnist_fashion_dominoes")
    spec = load_spec(reproduction, None, quick=False)
    quick = quick_spec(spec, reproduction)
    assert quick.grids == [
        {"optim.name": ["sgd"], "train.seed": [0, 1]},
        {"optim.name": ["sam"], "optim.rho": [0.05], "train.seed": [0, 1]},
    ]
    _, _, points = plan("mnist_fashion_dominoes", out=tmp_path, quick=True)
    assert len(points) == 4
    assert all(p.config.train.epochs == 1 for p in points)
    assert all(p.config.data.options["train_per_class"] == 200 for p in points)
    # Options the quick mode does not touch keep the grid file's value.
    full = yaml.safe_load(config_path(reproduction).read_text())
    assert points[0].config.model.options == full["base"]["model"]["options"]


def test_data_dir_rules(tmp_path):
    with pytest.raises(ConfigError, match="needs --data-dir DIR holding DIR/metadata.csv"):
        check_data_dir(get_reproduction("waterbirds"), None)
    with pytest.raises(ConfigError, match="is not a directory"):
        check_data_dir(get_reproduction("celeba"), str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="offline data only"):
        check_data_dir(get_reproduction("mnist5k_dominoes"), str(tmp_path))
    assert check_data_dir(get_reproduction("celeba"), str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError, match="unknown reproduction 'nope'; valid choices: toy"):
        get_reproduction("nope")


def test_toy_options_build_the_toy_config():
    from samlens.train.toy import toy_config_from_options

    options = yaml.safe_load(config_path(get_reproduction("toy")).read_text())["toy"]
    assert options["seeds"] >= 5
    cfg = toy_config_from_options(load_toy_options(get_reproduction("toy"), quick=False))
    assert len(cfg.seeds) == options["seeds"] and cfg.steps == options["steps"]
    assert list(cfg.optimizers) == options["optimizers"] and cfg.data.q == options["q"]


def test_frozen_bn_resnet50_keeps_batchnorm_fixed_in_training_mode():
    from samlens.models import get_model
    from samlens.reproduce import models  # noqa: F401  (registers resnet50_frozen_bn)

    torch.manual_seed(0)
    model = get_model("resnet50_frozen_bn", 3, (3, 32, 32))
    model.train()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 53 and all(not m.training for m in norms)
    assert all(not p.requires_grad for m in norms for p in m.parameters())
    assert model.head.weight.requires_grad and model.trunk.conv1.weight.requires_grad
    before = [m.running_mean.clone() for m in norms]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))  # a training-mode pass leaves the statistics alone
    assert out.shape == (2, 3)
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))


def test_record_importance_matches_a_direct_computation(tmp_path):
    import tests.train.train_tiny_data as tiny

    from samlens.reproduce.importance import record_importance

    cfg = load_config(
        None,
        {
            "data.name": tiny.NAME,
            "model.name": "mlp",
            "model.options": {"hidden": [8]},
            "optim.name": "lsam",
            "optim.rho": 0.3,
            "train.epochs": 2,
            "data.batch_size": 16,
            "probe.enabled": False,
        },
    )
    run_dir = tmp_path / "run"
    run_experiment(cfg, run_dir, quiet=True)
    assert record_importance([run_dir]) == 1
    assert record_importance([run_dir]) == 0  # idempotent
    finals = [e for e in rundir.read_results(run_dir) if e["event"] == "final"]
    assert len(finals) == 2
    got = finals[-1]["metrics"]
    assert set(finals[0]["metrics"]) < set(got)

    # Reference: the checkpoint's logits on the training split, λ by hand, the phantom head by autograd.
    dataset = build_dataset(cfg)
    model = build_model(cfg, dataset)
    model.load_state_dict(rundir.load_checkpoint(run_dir)["model"])
    model.eval()
    split = dataset.split("train")
    x = torch.stack([split[i][0] for i in range(len(split))])
    y = torch.tensor([split[i][1] for i in range(len(split))])
    logits = model(x).detach()
    lam = 1 - torch.softmax(logits, 1)[torch.arange(len(y)), y]
    assert got["gini_lambda"] == pytest.approx(gini(lam.numpy()), abs=1e-6)
    head = model.head
    phi = model.features(x).detach()
    loss = torch.nn.functional.cross_entropy(head(phi), y)
    gw, gb = torch.autograd.grad(loss, [head.weight, head.bias])
    scale = 0.3 / torch.sqrt((gw**2).sum() + (gb**2).sum())
    phantom = phi @ (head.weight + scale * gw).T + head.bias + scale * gb
    lam_t = importance_weights(phantom.detach(), y)
    assert got["gini_lambda_phantom"] == pytest.approx(gini(lam_t.numpy()), abs=1e-5)
    assert json.loads(json.dumps(got["lambda"])) == pytest.approx(lam.tolist(), abs=1e-5)

import pytest
import yaml

from samlens.errors import ConfigError
from samlens.train.config import (
    ExperimentConfig,
    config_hash,
    config_to_dict,
    derive_seed,
    dump_config,
    flatten_config,
    load_config,
)


def test_defaults_without_file():
    cfg = load_config()
    assert cfg == ExperimentConfig()


def test_yaml_roundtrip(tmp_path):
    src = tmp_path / "a.yaml"
    src.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "data": {"name": "toy", "options": {"n": 10, "nested": {"a": 1}}, "batch_size": 7},
                "optim": {"name": "sam", "rho": 0.2, "lr": 1},
                "train": {"epochs": 3, "steps": 11, "bf16": True},
            }
        )
    )
    cfg = load_config(src)
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.data.options == {"n": 10, "nested": {"a": 1}}
    out = tmp_path / "b.yaml"
    dump_config(cfg, out)
    again = load_config(out)
    assert again == cfg
    # YAML -> dataclass -> YAML is a fixed point
    out2 = tmp_path / "c.yaml"
    dump_config(again, out2)
    assert out.read_text() == out2.read_text()
    assert yaml.safe_load(out.read_text()) == config_to_dict(cfg)


def test_overrides_list_and_dict(tmp_path):
    cfg = load_config(overrides=["optim.rho=0.1", "train.steps=null", "data.options.k=3", "name=run a"])
    assert cfg.optim.rho == 0.1 and cfg.train.steps is None
    assert cfg.data.options == {"k": 3} and cfg.name == "run a"
    cfg2 = load_config(overrides={"optim.rho": 0.1, "data.options.k": 3, "name": "run a"})
    assert cfg2 == cfg


@pytest.mark.parametrize(
    "override, needle",
    [
        (["optim.rhoo=0.1"], "valid keys: name, base, lr, momentum, weight_decay, rho, options"),
        (["optimizer.rho=0.1"], "valid keys: data, model, optim, train, probe, name"),
        (["optim.rho=abc"], "optim.rho must be float"),
        (["train.epochs=1.5"], "train.epochs must be int"),
        (["train.bf16=1"], "train.bf16 must be bool"),
        (["optim.rho=-0.1"], "optim.rho must be >= 0"),
        (["train.schedule=linear"], "valid choices: cosine, step, constant"),
        (["data=3"], "data must be a mapping"),
        (["rho"], "section.key=value"),
    ],
)
def test_invalid_configs_raise_one_line(override, needle):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=override)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_flatten_hash_and_seed():
    sgd = load_config(overrides={"optim.name": "sgd", "data.options.b": 2, "data.options.a": [1, 2]})
    sam = load_config(
        overrides={"optim.name": "sam", "optim.rho": 0.3, "data.options.b": 2, "data.options.a": [1, 2]}
    )
    flat = flatten_config(sgd)
    assert flat["optim.name"] == "sgd" and flat["data.options.b"] == 2 and flat["data.options.a"] == "[1, 2]"
    assert all(not isinstance(v, (dict, list)) for v in flat.values())
    assert flat["train.steps"] is None
    # hash: stable, short, sensitive to the optimizer; seed: blind to it
    assert config_hash(sgd) == config_hash(
        load_config(overrides=dict(flatten_config(sgd), **{"data.options.a": [1, 2]}))
    )
    assert len(config_hash(sgd)) == 12 and config_hash(sgd) != config_hash(sam)
    assert derive_seed(sgd) == derive_seed(sam)
    other = load_config(overrides={"train.seed": 1, "data.options.b": 2, "data.options.a": [1, 2]})
    assert derive_seed(other) != derive_seed(sgd)
    assert 0 <= derive_seed(sgd) < 2**32


@pytest.mark.parametrize("name", ["../x", "a/b", "/abs", "..", ".", "", "  ", "a\\b", "nul\0"])
def test_name_must_be_one_plain_path_component(name):
    with pytest.raises(ConfigError, match="must be a plain name"):
        load_config(overrides={"name": name})
    assert load_config(overrides={"name": "sam rho=0.1 (seed 0)"}).name == "sam rho=0.1 (seed 0)"


def test_probe_engine_is_checked_with_the_other_names():
    from samlens.train.build import check_names

    check_names(load_config(overrides={"probe.engine": "torch:cpu"}))
    for engine, message in [
        ("nope", "unknown probe engine 'nope'"),
        ("torch:warp9", "unknown device 'warp9'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            check_names(load_config(overrides={"probe.engine": engine}))


def test_the_hard_only_ceiling_shares_the_sgd_runs_seed():
    base = {"data.name": "mnist_fashion4_dominoes", "data.options.train_per_class": 50}
    sgd = load_config(overrides=base)
    ceiling = load_config(overrides=dict(base, **{"data.options.shuffle_easy": True}))
    assert config_hash(sgd) != config_hash(ceiling)  # distinct runs ...
    assert derive_seed(sgd) == derive_seed(ceiling)  # ... with the same images, init and data order
    assert ceiling.data.options["shuffle_easy"] is True  # the option itself is kept for the dataset


def test_later_options_enter_the_hash_only_when_set():
    import hashlib
    import json

    from samlens.train.config import config_hash, config_to_dict, load_config

    cfg = load_config()
    d = config_to_dict(cfg)
    assert d["probe"]["C"] is None and d["data"]["global_batch_size"] is None
    del d["probe"]["C"], d["data"]["global_batch_size"]  # the config as it was before these options
    before = hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
    assert config_hash(cfg) == before
    fixed = load_config(overrides={"probe.C": 0.01})
    assert fixed.probe.C == 0.01 and config_hash(fixed) != before
    shared = load_config(overrides={"data.global_batch_size": 64})
    assert config_hash(shared) not in (before, config_hash(fixed))


@pytest.mark.parametrize("value", [0, -0.1, "x"])
def test_probe_c_must_be_positive(value):
    from samlens.train.config import load_config

    with pytest.raises(ConfigError, match="probe.C"):
        load_config(overrides={"probe.C": value})


def test_a_fixed_c_with_another_probe_method_is_refused_before_training():
    import torch

    from samlens.train.config import load_config
    from samlens.train.probing import make_prober

    cfg = load_config(overrides={"probe.method": "dfr", "probe.C": 0.1})
    with pytest.raises(ConfigError, match="probe.C fixes the balanced probe's C; probe method 'dfr'"):
        make_prober(cfg, dataset=None, device=torch.device("cpu"))

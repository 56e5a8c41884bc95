"""Mutated copies of the shipped configs, grid specs and toy config: each reader returns a valid
config or raises a one-line ConfigError naming the file, never another exception."""

import datetime
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import mutate
from samlens.cli.main import main
from samlens.errors import ConfigError
from samlens.train.config import (
    ExperimentConfig,
    config_from_dict,
    config_hash,
    config_to_yaml,
    load_config,
)
from samlens.train.sweep import expand, load_grid_spec
from samlens.train.toy import TOY_OPTIMIZERS, ToyConfig, load_toy_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(CONFIGS.glob("*.yaml"))
GRIDS = sorted(p for p in [*CONFIGS.glob("paper/*.yaml"), *CONFIGS.glob("sweeps/*.yaml")] if p.stem != "toy")
TOY = CONFIGS / "paper" / "toy.yaml"

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Values of every type and many domains' edges: what a typo or a wrong paste puts at a key.
ODD = [None, True, False, 0, -1, 1, 2.5, -0.5, 1.0, 1.5, 1e309, -1e309, math.nan, 10**30, "", "x", "1e-3",
       "../x", [], [1, 2], [0.9, 1.0], ["sgd", "adam"], {}, {"a": 1}, {1: 2}, datetime.date(2020, 1, 1),
       b"\x00\xff"]  # fmt: skip
# Bytes a damaged or wrong file holds: not UTF-8, NUL, YAML syntax, tags.
JUNK = [b"\xff", b"\xfe\xff", b"\x00", b"\x80abc", b": ", b"[", b"{", b"- ", b"\t", b"!!python/object ",
        b"!!binary ", b"&a *a ", b"? ", b"'", b'"', b"%YAML 9.9\n", b"---\n", b"\n  ", b"#"]  # fmt: skip


def _paths(tree, prefix=()):
    """Every key path in a nested YAML tree (mappings and list items)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield (*prefix, i)
            yield from _paths(value, (*prefix, i))


def _mutate_bytes(data: bytes, draw) -> bytes:
    """The shared byte mutator, plus what breaks YAML in particular: junk tokens, random bytes."""
    kind = draw(st.sampled_from(["shared", "junk", "binary"]))
    if kind == "junk":
        i = draw(st.integers(0, len(data)))
        return data[:i] + draw(st.sampled_from(JUNK)) + data[i:]
    if kind == "binary":
        return draw(st.binary(max_size=64))
    return mutate(data, draw)


def _mutate_fields(data: bytes, draw) -> bytes:
    """Re-type, drop or add one key anywhere in the parsed tree (or replace the whole document)."""
    tree = yaml.safe_load(data)
    paths = list(_paths(tree))
    kind = draw(st.sampled_from(["retype", "retype", "drop", "add", "top"]))
    if kind == "top" or not paths:
        tree = draw(st.sampled_from(ODD))
    else:
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        if kind == "retype":
            parent[path[-1]] = draw(st.sampled_from(ODD))
        elif kind == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            key = draw(st.sampled_from(["rhoo", "optimizer", "bogus", 7, None]))
            parent[key] = draw(st.sampled_from(ODD))
        else:
            parent.append(draw(st.sampled_from(ODD)))
    return yaml.dump(tree, Dumper=yaml.Dumper).encode()  # the full dumper: tags like !!python/bytes too


def _mutated(src: Path, draw) -> bytes:
    data = src.read_bytes()
    if draw(st.booleans()):
        return _mutate_bytes(data, draw)
    return _mutate_fields(data, draw)


def _refused(err: ConfigError, path: Path) -> None:
    message = str(err)
    assert "\n" not in message, message
    assert str(path) in message, message  # the error names the file


def _valid_experiment(cfg: ExperimentConfig) -> None:
    again = config_from_dict(yaml.safe_load(config_to_yaml(cfg)))  # every value survives the round trip
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert cfg.optim.rho >= 0 and cfg.optim.lr > 0 and 0 <= cfg.optim.momentum < 1
    assert cfg.optim.weight_decay >= 0 and cfg.data.batch_size >= 1 and cfg.train.epochs >= 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def test_the_shipped_files_are_read_as_they_are():
    for path in EXPERIMENTS:
        _valid_experiment(load_config(path))
    for path in GRIDS:
        assert expand(load_grid_spec(path))
    # The shipped study is the documented default with the whole variant axis.
    assert load_toy_config(TOY) == ToyConfig(optimizers=TOY_OPTIMIZERS)


@FUZZ
@given(data=st.data())
def test_mutated_experiment_configs(workdir, data):
    path = workdir / "config.yaml"
    path.write_bytes(_mutated(data.draw(st.sampled_from(EXPERIMENTS)), data.draw))
    try:
        cfg = load_config(path)
    except ConfigError as err:
        _refused(err, path)
        return
    _valid_experiment(cfg)


@FUZZ
@given(data=st.data())
def test_mutated_grid_specs(workdir, data):
    path = workdir / "grid.yaml"
    path.write_bytes(_mutated(data.draw(st.sampled_from(GRIDS)), data.draw))
    try:
        points = expand(load_grid_spec(path), out=workdir / "out")
    except ConfigError as err:
        _refused(err, path)
        return
    for point in points:
        _valid_experiment(point.config)
        assert point.run_dir.name == point.config_hash == config_hash(point.config)


@FUZZ
@given(data=st.data())
def test_mutated_toy_config(workdir, data):
    path = workdir / "toy.yaml"
    path.write_bytes(_mutated(TOY, data.draw))
    try:
        cfg = load_toy_config(path)
    except ConfigError as err:
        _refused(err, path)
        return
    assert cfg == ToyConfig(**{**cfg.__dict__})  # construction re-checks every field
    assert cfg.lr > 0 and cfg.rho >= 0 and 0 <= cfg.momentum < 1 and 1 <= cfg.batch_size <= cfg.n_train
    assert 0 <= cfg.data.q <= 1 and cfg.optimizers and cfg.seeds


@pytest.mark.parametrize(
    "override, domain",
    [
        ("optim.rho=-0.1", "[0, inf)"),
        ("optim.rho=.inf", "[0, inf)"),
        ("optim.rho=.nan", "[0, inf)"),
        ("optim.lr=0", "(0, inf)"),
        ("optim.momentum=1.0", "[0, 1)"),
        ("optim.weight_decay=-1e-4", "[0, inf)"),
        ("optim.options={betas: [0.9, 1.0]}", "[0, 1)"),
        ("optim.options={eps: 0}", "(0, inf)"),
        ("data.batch_size=0", "[1, inf)"),
        ("train.epochs=0", "[1, inf)"),
        ("train.steps=0", "[1, inf)"),
        ("train.log_every=0", "[1, inf)"),
        ("train.eval_every=-1", "[0, inf)"),
        ("probe.every=-1", "[0, inf)"),
    ],
)
def test_every_numeric_option_is_checked_against_its_domain(override, domain):
    key = override.split("=", 1)[0]
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    message = str(info.value)
    assert message.startswith(key) and domain in message and "\n" not in message, message


@pytest.mark.parametrize(
    "options, message",
    [
        ({"lr": 0}, "lr must be > 0, got 0"),
        ({"momentum": 1.5}, "momentum must be in [0, 1), got 1.5"),
        ({"rho": -1}, "rho must be >= 0"),
        ({"sam_rho": math.inf}, "sam_rho must be a finite number in [0, inf)"),
        ({"q": 1.5}, "q must be in [0, 1], got 1.5"),
        ({"width": 0}, "width must be in [1, inf), got 0"),
        ({"seeds": 0}, "seeds must be in [1, inf), got 0"),
        (
            {"optimizers": "sgd,adam"},
            "unknown optimizers 'adam'; valid choices: sgd, sam, gsam, wsam, looksam, fsam, random_sam, "
            "lsam, iw, lr",
        ),
        ({"rho_mode": "both"}, "unknown rho_mode 'both'"),
        ({"lrr": 0.1}, "unknown key lrr"),
    ],
)
def test_toy_options_are_checked_by_the_config_loader(tmp_path, options, message):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({"toy": options}))
    with pytest.raises(ConfigError) as info:
        load_toy_config(path)
    assert str(info.value).startswith(f"toy config {str(path)!r}: ")
    assert message in str(info.value) and "\n" not in str(info.value)


DAMAGED = [b"name: \xff\xfe\n", b"\x89PNG\r\n\x1a\n\x00\x00", b"optim:\n  lr: [0.1\n"]


@pytest.mark.parametrize("content", DAMAGED)
def test_cli_refuses_a_damaged_config_file_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert main(["run", "--config", str(path), "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"samlens run: error: config file {str(path)!r}") and "\n" not in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


def test_cli_momentum_outside_its_domain_does_not_train(tmp_path, capsys):
    argv = ["run", "--config", str(CONFIGS / "mnist5k_sgd.yaml"), "--optim.momentum", "1.5"]
    assert main([*argv, "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "samlens run: error: optim.momentum must be in [0, 1), got 1.5"
    assert not (tmp_path / "run").exists()

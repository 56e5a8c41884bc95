"""Reading run directories for a report: a run without records reads its config.yaml."""

from samlens.report.load import load_run
from samlens.train.config import dump_config, flatten_config, load_config


def test_a_pending_run_reads_the_flat_config_its_records_would_carry(tmp_path):
    # Options out of order, nested values and a list: the record form sorts the option keys
    # and writes containers as JSON text; config.yaml read back must give the same mapping.
    cfg = load_config(
        None,
        {
            "optim.name": "sam",
            "optim.rho": 0.2,
            "data.options": {"zeta": [3, 1], "alpha": {"b": 1, "a": None}, "n": 10},
            "model.options": {"width": 8},
            "train.epochs": 3,
        },
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dump_config(cfg, run_dir / "config.yaml")
    run = load_run(run_dir, tmp_path)
    assert run.status == "pending" and run.events == []
    assert run.config == flatten_config(cfg)
    assert list(run.config) == list(flatten_config(cfg))
    assert run.config["data.options.zeta"] == "[3, 1]" and run.config["data.options.alpha.a"] is None

import csv

import pytest

from samlens.cli.main import main
from samlens.reproduce import REPRODUCTIONS, get_reproduction

OFFLINE = [n for n, r in REPRODUCTIONS.items() if not r.needs_data]
REAL = [n for n, r in REPRODUCTIONS.items() if r.needs_data]


def test_list_names_every_reproduction_and_its_data_needs(capsys):
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(REPRODUCTIONS)
    for line in lines:
        name = line.split()[0]
        assert ("needs --data-dir" in line) == (name in REAL)
        assert "hypothesis: " in line  # what the grid tests, never a claimed result


@pytest.mark.parametrize("name", REAL)
def test_real_dataset_without_data_dir_is_a_one_line_error(name, tmp_path, capsys):
    assert main(["reproduce", name, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"samlens reproduce: error: {name} needs --data-dir DIR holding ")
    assert not (tmp_path / "out").exists()


def test_bad_inputs_exit_2_without_output(tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["reproduce", "nope"], "unknown reproduction 'nope'"),
        (["reproduce"], "give a reproduction NAME or --list"),
        (["reproduce", "celeba", "--data-dir", str(tmp_path / "missing")], "is not a directory"),
        (["reproduce", "mnist5k_dominoes", "--data-dir", str(tmp_path)], "offline data only"),
        (["reproduce", "mnist5k_dominoes", "--launcher", "nope"], "unknown launcher 'nope'"),
        (["reproduce", "mnist5k_dominoes", "--workers", "0"], "--workers must be >= 1"),
    ]
    for argv, message in cases:
        assert main([*argv, "--out", str(out)]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    assert not out.exists()


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFLINE)
def test_quick_reproduction_runs_end_to_end(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["reproduce", name, "--quick", "--out", str(out)]) == 0
    if name == "toy":
        summary = (out / "summary.txt").read_text()
        assert (out / "results.jsonl").is_file()
        rows = [line.split()[0] for line in summary.splitlines() if line.strip()]
        assert {"sgd", "sam", "lsam", "iw", "lr"} <= set(rows)
        return
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    rows = _rows(out / "summary.csv")
    optims = {r["optim.name"] for r in rows}
    metrics = {r["metric"] for r in rows}
    if name == "mechanism":
        assert optims == {"sgd", "lsam", "iw", "lr"}
        assert {"gini_lambda", "gini_lambda_phantom"} <= metrics
    else:
        assert optims == {"sgd", "sam"}
    assert any(m.startswith("probe_acc_") for m in metrics)
    assert all(r["n"] == "2" for r in rows if r["metric"].startswith("probe_acc_"))
    report = (out / "report.md").read_text()
    assert "optim=sgd" in report and ("optim=sam" in report or "optim=lsam" in report)
    # Headroom: an untrained floor and a hard-only ceiling per seed, every optimizer placed between them.
    references = {r["reference"] for r in rows if r["metric"] == "probe_acc_label"}
    if not get_reproduction(name).hard_only:
        # A conditions grid: untrained floors per setting, paired differences, no ceiling runs.
        assert references == {"", "untrained (floor)"}
        assert "Paired comparison with SGD" in report
        return
    assert references == {"", "untrained (floor)", "hard-only (ceiling)"}
    fractions = {r["optim.name"] for r in rows if r["metric"] == "fraction_of_range"}
    assert fractions == optims
    assert "Headroom" in report and (out / "figures" / "headroom.png").is_file()
    assert any(status in report for status in ("**reproduces**", "**does not reproduce**", "**cannot test"))
    printed = capsys.readouterr().out
    # One line per finished run as it finishes: 2 floors, then every trained run (points + 2 ceilings).
    assert sum("untrained (floor)" in line and ": done" in line for line in printed.splitlines()) == 2
    assert sum("hard-only (ceiling)" in line and ": done" in line for line in printed.splitlines()) == 2
    # A second call finds every run done and only rewrites the report.
    assert main(["reproduce", name, "--quick", "--out", str(out)]) == 0
    assert "0 to run" in capsys.readouterr().out

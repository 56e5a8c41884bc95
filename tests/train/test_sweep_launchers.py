"""Each launcher completes a real 2-run sweep of the real runner on a tiny dataset.

The tiny dataset is registered by ``train_tiny_data`` (next to these tests); the grid
spec's ``imports`` makes every worker import it, and PYTHONPATH lets workers of Ray and
submitit (fresh interpreters) find it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sweep_helpers import TINY

from samlens import rundir
from samlens.cli.main import main
from samlens.report import write_report
from samlens.rundir import read_results
from samlens.train import launchers, sweep
from samlens.train.sweep import expand, load_grid_spec, sweep_status

HERE = Path(__file__).resolve().parent


@pytest.fixture
def tiny_grid(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    grid = tmp_path / "tiny.yaml"
    grid.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "sweep")}, sort_keys=False))
    return grid


def _finished(grid: Path) -> list[Path]:
    points = expand(load_grid_spec(grid))
    assert [s.state for s in sweep_status(points)] == ["done", "done"]
    for p in points:
        events = read_results(p.run_dir)
        assert events[-1]["event"] == "final" and 0 <= events[-1]["metrics"]["test_acc"] <= 1
    return [p.run_dir for p in points]


def _assert_finish_lines(out: str, runs: list[Path]) -> None:
    """One line per run, as it finished: counter, hash, state and final test accuracy."""
    lines = [line for line in out.splitlines() if line.startswith("  [")]
    assert sorted(line[:8] for line in lines) == ["  [1/2] ", "  [2/2] "]
    for run in runs:
        acc = read_results(run)[-1]["metrics"]["test_acc"]
        assert any(f"{run.name} (" in line and f": done  test_acc {acc:.4f}" in line for line in lines), lines


def _snapshot(run_dirs: list[Path]) -> dict[str, tuple[int, str]]:
    return {
        str(p / name): ((p / name).stat().st_mtime_ns, (p / name).read_text())
        for p in run_dirs
        for name in ("results.jsonl", "done")
    }


@pytest.mark.slow
def test_local_launcher_completes_sweep_and_relaunch_skips(tiny_grid, capsys):
    assert main(["sweep", "launch", str(tiny_grid), "--launcher", "local", "--workers", "2"]) == 0
    runs = _finished(tiny_grid)
    _assert_finish_lines(capsys.readouterr().out, runs)
    before = _snapshot(runs)
    capsys.readouterr()
    assert main(["sweep", "launch", str(tiny_grid), "--launcher", "local"]) == 0
    assert "2 done (skipped)" in capsys.readouterr().out
    assert _snapshot(runs) == before  # nothing re-ran or appended

    # The report of the real sweep: both seeds in one setting, n=2 in every table row.
    sweep = runs[0].parent
    md = write_report(sweep).read_text()
    finals = [read_results(r)[-1]["metrics"]["test_acc"] for r in runs]
    mean = sum(finals) / 2
    se = abs(finals[0] - finals[1]) / 2  # std (ddof=1) / √2 for two values
    assert f"{mean:.4f} ± {se:.4f} (n=2)" in md
    assert json.loads((sweep / "sweep.json").read_text())["imports"] == ["train_tiny_data"]


@pytest.mark.slow
def test_ray_launcher_completes_sweep_on_a_local_instance_it_starts(tiny_grid, capsys, monkeypatch):
    import ray  # the "ray" extra; CI installs samlens[all]

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # a local ray.init turns token auth on for the process
    assert main(["sweep", "launch", str(tiny_grid), "--launcher", "ray", "--workers", "2"]) == 0
    assert not ray.is_initialized()  # the launcher shut down the instance it started
    out = capsys.readouterr().out
    assert "\nstarting a local Ray instance with 2 CPUs\n" in out
    _assert_finish_lines(out, _finished(tiny_grid))


@pytest.mark.slow
def test_submitit_launcher_completes_sweep_with_local_executor(tiny_grid, capsys):
    args = ["sweep", "launch", str(tiny_grid), "--launcher", "slurm", "--cluster", "local", "--workers", "2"]
    assert main(args) == 0
    runs = _finished(tiny_grid)
    _assert_finish_lines(capsys.readouterr().out, runs)
    assert (runs[0].parent / ".submitit").is_dir()  # submitit's own logs, beside the runs


def test_local_launcher_reports_each_run_as_it_finishes(tmp_path):
    # The first task finishes only after the launcher has reported the second one, so a
    # launcher that reported in task order (or at the end) would make it time out.
    from sweep_helpers import wait_for_file_run

    reported = tmp_path / "second-reported"
    tasks = [
        launchers.Task({"wait_for": str(reported)}, str(tmp_path / "first")),
        launchers.Task({}, str(tmp_path / "second")),
    ]
    seen = []

    def report(outcome):
        seen.append((Path(outcome.run_dir).name, outcome.state))
        if Path(outcome.run_dir).name == "second":
            reported.write_text("")

    outcomes = launchers.launch("local", tasks, workers=2, run_fn=wait_for_file_run, report=report)
    assert seen == [("second", "done"), ("first", "done")]
    assert [(Path(o.run_dir).name, o.state) for o in outcomes] == [("first", "done"), ("second", "done")]


@pytest.mark.parametrize(
    "workers, tasks, cores, expected",
    [(1, 5, 2, None), (2, 5, 2, 1), (4, 4, 2, 1), (2, 5, 8, 4), (3, 2, 8, 4)],
)
def test_local_threads_split_the_cores_among_parallel_runs(workers, tasks, cores, expected):
    assert launchers.local_threads(workers, tasks, cores) == expected


def test_local_launcher_hands_each_worker_its_share_of_threads(tmp_path):
    from sweep_helpers import threads_run

    from samlens.train.distributed import available_cores

    tasks = [launchers.Task({}, str(tmp_path / f"r{i}")) for i in range(3)]
    outcomes = launchers.launch("local", tasks, workers=2, run_fn=threads_run)
    assert {o.state for o in outcomes} == {f"threads={max(1, available_cores() // 2)}"}


def test_finish_lines_name_the_run_its_state_and_key_metrics(tmp_path, monkeypatch, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "sweep")}, sort_keys=False))
    points = expand(load_grid_spec(grid))

    def fake_launch(name, tasks, workers=1, report=None, **options):
        outcomes = []
        for task, state in zip(tasks, ["done", "failed"]):
            run_dir = Path(task.run_dir)
            run_dir.mkdir(parents=True)
            if state == "done":
                metrics = {
                    "test_acc": 0.875,
                    "worst_group_acc": 0.5,
                    "probe_acc_other": 0.625,
                    "group_acc/0": 1.0,
                }
                rundir.append_result(run_dir, {"event": "final", "step": 8, "metrics": metrics})
                (run_dir / "done").write_text("")
            else:
                (run_dir / "failed").write_text("training loss is nan at step 3 (epoch 1)\n")
            outcomes.append(launchers.Outcome(str(run_dir), state))
            report(outcomes[-1])
        return outcomes

    monkeypatch.setattr(launchers, "launch", fake_launch)
    assert main(["sweep", "launch", str(grid)]) == 1
    lines = capsys.readouterr().out.splitlines()
    a, b = points[0].config_hash, points[1].config_hash
    assert (
        f"  [1/2] {a} (train.seed=0): done  test_acc 0.8750  worst_group_acc 0.5000  probe_acc_other 0.6250"
        in lines
    )
    assert f"  [2/2] {b} (train.seed=1): failed  training loss is nan at step 3 (epoch 1)" in lines


def test_second_launcher_skips_a_run_another_process_trains(tiny_grid, capsys):
    from test_rundir import lock_held_by_other_process

    points = expand(load_grid_spec(tiny_grid))
    busy = points[0].run_dir
    with lock_held_by_other_process(busy):
        assert sweep.run_point(points[0].config, busy) == "running"  # a worker that lost the race
        assert main(["sweep", "launch", str(tiny_grid), "--launcher", "local"]) == 1
        out = capsys.readouterr().out
        assert "1 running in another process (skipped), 1 to run" in out
        assert f"  {points[0].config_hash} (train.seed=0): running (in another process)" in out
        assert f"{points[1].config_hash} (train.seed=1): done  test_acc" in out
        assert "1 done, 1 running, 0 failed, 0 pending (of 2)" in out
        assert sorted(p.name for p in busy.iterdir()) == [".lock"]  # untouched
    assert [s.state for s in sweep_status(points)] == ["pending", "done"]


@pytest.mark.slow
def test_two_concurrent_launchers_train_every_run_once(tiny_grid, tmp_path):
    spec = yaml.safe_load(tiny_grid.read_text())
    spec["base"]["data"]["options"] = {"n": 4096}
    tiny_grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    cmd = [sys.executable, "-m", "samlens", "sweep", "launch", str(tiny_grid), "--launcher", "local"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(p.wait(timeout=900), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(code in (0, 1) for code, _, _ in results), results
    for p in expand(load_grid_spec(tiny_grid)):
        events = [(e["event"], e["step"]) for e in read_results(p.run_dir)]
        assert len(events) == len(set(events)) and events[-1][0] == "final", events
        assert (p.run_dir / "done").exists()


def test_slurm_jobs_are_requeueable_with_the_same_call():
    from submitit.helpers import DelayedSubmission

    calls = []

    def run_fn(config, run_dir, threads, imports):
        calls.append((config, run_dir, threads, imports))
        return "done"

    job = launchers.Requeueable(run_fn)
    assert job({"a": 1}, "/r", 1, ()) == "done" and calls == [({"a": 1}, "/r", 1, ())]
    again = job.checkpoint({"a": 1}, "/r", 1, ())
    assert isinstance(again, DelayedSubmission)
    assert again.function is job and again.args == ({"a": 1}, "/r", 1, ())

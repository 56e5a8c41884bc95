"""The slurm launcher against a scripted SLURM (tests/train/slurm_standin.py) and submitit's local
executor: the generated job script carries every option asked for, job ids reach meta.json, a
preempted or timed-out job checkpoints, requeues itself and resumes to the uninterrupted results,
and a job of several tasks trains one DDP run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from slurm_standin import install
from sweep_helpers import TINY
from test_runner import _strip

from samlens.rundir import load_checkpoint, read_results
from samlens.train.config import config_from_dict
from samlens.train.launchers.slurm import SlurmOptions, parse_params
from samlens.train.runner import run_experiment
from samlens.train.scheduler import current_job, requeue_id
from samlens.train.sweep import expand, load_grid_spec, sweep_status

HERE = Path(__file__).resolve().parent
SAMLENS = [sys.executable, "-m", "samlens"]

BASE = {**TINY["base"], "probe": {"enabled": False}}


def _grid(tmp_path: Path, seeds: list[int], **train) -> Path:
    base = json.loads(json.dumps(BASE))
    base["train"].update(train)
    spec = {
        "base": base,
        "imports": ["train_tiny_data", "standin_pause"],
        "grid": {"train.seed": seeds},
        "out": str(tmp_path / "sweep"),
    }
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    return grid


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **install(tmp_path / "bin", tmp_path / "slurm"), **extra}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    for key in [k for k in env if k.startswith(("SLURM_", "SUBMITIT_"))]:
        if key != "SLURM_STANDIN_DIR":
            del env[key]  # the driver itself runs outside any job
    return env


def _runs(grid: Path) -> list[Path]:
    return [p.run_dir for p in expand(load_grid_spec(grid))]


# --- the options and the environment, without a scheduler --------------------------------------


def test_slurm_options_become_submitit_parameters():
    options = SlurmOptions(
        partition="gpu",
        time_min=30,
        cpus_per_task=4,
        gpus_per_task=1,
        tasks_per_run=2,
        mem="16G",
        account="lab",
        qos="high",
        constraint="a100",
        setup=("module load cuda",),
        params=parse_params(["comment=x=y", "exclusive="]),
    )
    assert options.submitit_parameters("slurm", workers=3) == {
        "timeout_min": 30,
        "cpus_per_task": 4,
        "tasks_per_node": 2,
        "nodes": 1,
        "name": "samlens-sweep",
        "gpus_per_node": 2,
        "slurm_array_parallelism": 3,
        "slurm_partition": "gpu",
        "slurm_mem": "16G",
        "slurm_account": "lab",
        "slurm_qos": "high",
        "slurm_constraint": "a100",
        "slurm_setup": ["module load cuda"],
        "slurm_additional_parameters": {"comment": "x=y", "exclusive": ""},
    }
    # submitit's local executor takes only what it understands.
    assert set(options.submitit_parameters("local", workers=3)) == {
        "timeout_min",
        "cpus_per_task",
        "tasks_per_node",
        "nodes",
        "name",
        "gpus_per_node",
    }


def test_the_job_environment_is_read_from_slurm_and_submitit_variables():
    env = {
        "SLURM_JOB_ID": "7001",
        "SLURM_ARRAY_JOB_ID": "7000",
        "SLURM_ARRAY_TASK_ID": "1",
        "SLURM_RESTART_COUNT": "2",
        "SLURMD_NODENAME": "n01",
        "SLURM_NTASKS": "4",
    }
    assert current_job(env) == {
        "scheduler": "slurm",
        "job_id": "7001",
        "array_job_id": "7000",
        "array_task_id": "1",
        "restart_count": 2,
        "node": "n01",
        "tasks": 4,
    }
    assert requeue_id(env) == "7000_1"
    assert requeue_id({"SLURM_JOB_ID": "55"}) == "55"
    assert current_job({"SUBMITIT_LOCAL_JOB_ID": "123"}) == {
        "scheduler": "submitit-local",
        "job_id": "123",
        "tasks": 1,
    }
    assert current_job({}) is None


# --- the scripted SLURM ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_through_scripted_slurm_writes_the_options_into_the_job_script(tmp_path):
    grid = _grid(tmp_path, [0, 1])
    env = _env(tmp_path)
    cmd = [
        *SAMLENS,
        "sweep",
        "launch",
        str(grid),
        "--launcher",
        "slurm",
        "--cluster",
        "slurm",
        "--workers",
        "2",
        "--partition",
        "p1",
        "--time",
        "30",
        "--mem",
        "2G",
        "--account",
        "acc",
        "--qos",
        "q",
        "--constraint",
        "c1",
        "--slurm-param",
        "comment=samlens-test",
        "--slurm-setup",
        "export SAMLENS_SETUP_RAN=1",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "submitted slurm job array 1000" in proc.stdout
    script = (tmp_path / "slurm" / "1000" / "script.sh").read_text()
    for line in [
        "#SBATCH --partition=p1",
        "#SBATCH --time=30",
        "#SBATCH --mem=2G",
        "#SBATCH --account=acc",
        "#SBATCH --qos=q",
        "#SBATCH --constraint=c1",
        "#SBATCH --comment=samlens-test",
        "#SBATCH --array=0-1%2",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --cpus-per-task=1",
        "export SAMLENS_SETUP_RAN=1",
    ]:
        assert line in script.splitlines(), (line, script)
    runs = _runs(grid)
    assert [s.state for s in sweep_status(expand(load_grid_spec(grid)))] == ["done", "done"]
    tasks = set()
    for run in runs:
        (job,) = json.loads((run / "meta.json").read_text())["jobs"]
        assert job["scheduler"] == "slurm" and job["array_job_id"] == "1000" and job["restart_count"] == 0
        tasks.add(job["array_task_id"])
        assert read_results(run)[-1]["event"] == "final"
    assert tasks == {"0", "1"}


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR2"])
def test_a_preempted_or_timed_out_job_requeues_itself_and_resumes_to_the_same_results(tmp_path, sig):
    # 4 steps per epoch; checkpoints every 3 steps; the signal lands at step 10 (mid-epoch).
    grid = _grid(tmp_path, [0], epochs=5, checkpoint_every=3)
    marker = tmp_path / "paused"
    env = _env(tmp_path, SAMLENS_TEST_PAUSE_AT="10", SAMLENS_TEST_PAUSE_MARKER=str(marker))
    cmd = [*SAMLENS, "sweep", "launch", str(grid), "--launcher", "slurm", "--cluster", "slurm"]
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not marker.exists():
            assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
            time.sleep(0.1)
        os.kill(int(marker.read_text()), getattr(signal, sig))
        out, err = driver.communicate(timeout=300)
    finally:
        driver.kill()
    assert driver.returncode == 0, out[-3000:] + err[-3000:]
    (run,) = _runs(grid)
    calls = (tmp_path / "slurm" / "calls.log").read_text().splitlines()
    assert "scontrol requeue 1000" in calls  # one point: submitit submits a plain job, no array
    jobs = json.loads((run / "meta.json").read_text())["jobs"]
    assert [(j["job_id"], j["restart_count"]) for j in jobs] == [("1000", 0), ("1000", 1)]
    task_log = (tmp_path / "sweep" / ".submitit" / "1000_0_log.err").read_text()
    assert f"stopped by {sig} at step 10 after writing its checkpoint" in task_log
    assert "requeued SLURM job 1000" in task_log
    assert load_checkpoint(run)["step"] == 20
    # The uninterrupted run of the same config, in this process: the same records, step for step.
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    ref = run_experiment(cfg, tmp_path / "ref", quiet=True)
    assert _strip(read_results(run)) == _strip(read_results(ref))


# --- submitit's local executor: a DDP run over the tasks of one job -----------------------------


@pytest.mark.slow
@pytest.mark.parametrize("cluster, scheduler", [("local", "submitit-local"), ("slurm", "slurm")])
def test_a_job_of_two_tasks_trains_one_ddp_run(tmp_path, cluster, scheduler):
    """submitit's local executor, and the scripted SLURM whose srun starts two tasks with
    SLURM_PROCID 0 and 1: either way the tasks become the ranks of one gloo run."""
    grid = _grid(tmp_path, [0])
    env = _env(tmp_path)
    cmd = [*SAMLENS, "sweep", "launch", str(grid), "--launcher", "slurm", "--cluster", cluster]
    proc = subprocess.run(
        [*cmd, "--tasks-per-run", "2"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = _runs(grid)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["world_size"] == 2
    assert meta["jobs"][0]["scheduler"] == scheduler and meta["jobs"][0]["tasks"] == 2
    assert read_results(run)[-1]["event"] == "final"
    if cluster == "slurm":
        assert "#SBATCH --ntasks-per-node=2" in (tmp_path / "slurm" / "1000" / "script.sh").read_text()


@pytest.mark.slow
def test_reproduce_runs_floors_and_ceilings_as_slurm_jobs(tmp_path):
    env = _env(tmp_path)
    out = tmp_path / "repro"
    cmd = [*SAMLENS, "reproduce", "mnist5k_dominoes", "--quick", "--out", str(out), "--launcher", "slurm"]
    proc = subprocess.run(
        [*cmd, "--cluster", "slurm", "--workers", "2", "--mem", "1G"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # One array for everything: the 2 floors, 2 ceilings and 4 grid points all ran as its tasks.
    assert (tmp_path / "slurm" / "1000" / "tasks").read_text() == "8"
    assert "#SBATCH --mem=1G" in (tmp_path / "slurm" / "1000" / "script.sh").read_text()
    for role in ("floor", "ceiling"):
        dirs = sorted((out / role).iterdir())
        assert len(dirs) == 2
        for run in dirs:
            (job,) = json.loads((run / "meta.json").read_text())["jobs"]
            assert job["scheduler"] == "slurm" and job["array_job_id"] == "1000", (role, job)
    assert (out / "report.md").is_file()

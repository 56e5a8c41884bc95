"""The ray launcher against a real cluster: one ``ray start --head`` that this module starts.

Drivers run as subprocesses (the CLI, or a small script for custom run functions), each from its own
working directory, so none inherits the Ray state of this process or of another driver. The cluster
uses token authentication, Ray's default for ``ray start``, with a token of its own (never the user's
``~/.ray/auth_token``); its workers find the tiny test dataset through PYTHONPATH, as a real cluster
has the user's plugin modules installed. It is stopped by killing its own process group: ``ray stop``
would stop every Ray cluster on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sweep_helpers import TINY

from samlens.rundir import read_results

pytest.importorskip("ray")

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Cluster:
    address: str
    token: str
    cwd: Path

    def env(self, **changes: str | None) -> dict[str, str]:
        """A driver's environment: this cluster's token and the test modules, no RAY_ADDRESS;
        ``changes`` set variables, or remove them when None."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, PYTHONPATH=str(HERE))
        for key, value in changes.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[Cluster]:
    # A short temp dir: Ray's socket paths under it must stay within the 107-byte limit.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    cwd = tmp_path_factory.mktemp("cluster-cwd")
    port, token = _free_port(), secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "PYTHONPATH": str(HERE)}
    env.pop("RAY_ADDRESS", None)
    cmd = [
        str(BIN / "ray"), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
        "--disable-usage-stats", "--include-dashboard=false", f"--temp-dir={temp_dir}",
        # Fixed default ports would collide with another cluster on this machine.
        f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}",
    ]  # fmt: skip
    log = (cwd / "ray-start.log").open("w")
    # A session of its own: its processes are the group the finalizer stops, and only they.
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (temp_dir / "ray_current_cluster").exists():  # written once the head is up
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not come up:\n{(cwd / 'ray-start.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield Cluster(f"127.0.0.1:{port}", token, cwd)
    finally:
        # SIGTERM to the head alone: it stops its own processes at once (with the whole group
        # signalled together it lingered for 20 s); then whatever is left of the group.
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _samlens(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "samlens"), *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _grid(directory: Path, seeds: list[int]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    grid = directory / "tiny.yaml"
    grid.write_text(yaml.safe_dump({**TINY, "grid": {"train.seed": seeds}}, sort_keys=False))
    return grid


def _runs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def _assert_finished(runs: list[Path], n: int) -> None:
    assert len(runs) == n, runs
    for run in runs:
        assert (run / "done").exists()
        final = read_results(run)[-1]
        assert final["event"] == "final" and 0 <= final["metrics"]["test_acc"] <= 1


@pytest.mark.slow
def test_cli_sweep_on_a_running_cluster_lands_under_the_drivers_cwd(ray_cluster, tmp_path):
    driver = tmp_path / "driver"
    _grid(driver, [0, 1])
    args = ["sweep", "launch", "tiny.yaml", "--launcher", "ray", "--ray-address", ray_cluster.address]
    done = _samlens([*args, "--workers", "2", "--out", "sweep"], driver, ray_cluster.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^joined the Ray cluster at \S+:\d+ \(2 CPUs\)$", done.stdout, re.M), done.stdout
    assert "2 done, 0 running, 0 failed, 0 pending (of 2)" in done.stdout
    _assert_finished(_runs(driver / "sweep"), 2)
    assert not (ray_cluster.cwd / "sweep").exists()  # nothing in the workers' own working directory

    status = _samlens(["sweep", "status", "tiny.yaml", "--out", "sweep"], driver, ray_cluster.env())
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[1] == "2 done, 0 running, 0 failed, 0 pending (of 2)", status.stdout


@pytest.mark.slow
def test_ray_address_from_the_environment_joins_that_cluster(ray_cluster, tmp_path):
    _grid(tmp_path, [0])
    env = ray_cluster.env(RAY_ADDRESS=ray_cluster.address)
    done = _samlens(["sweep", "launch", "tiny.yaml", "--launcher", "ray", "--out", "sweep"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^joined the Ray cluster at \S+ \(2 CPUs, from RAY_ADDRESS\)$", done.stdout, re.M)
    _assert_finished(_runs(tmp_path / "sweep"), 1)


# Custom run functions live in the driver script itself: Ray ships __main__'s functions by value.
DRIVER = r"""
import dataclasses, json, os, sys
from pathlib import Path

mode, address, out, retries = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])


def crash_once(config, run_dir, threads, imports):
    # The first attempt dies as a killed worker would; the retry finds the marker and finishes.
    marker = Path(config["marker"])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "done").write_text("")
    return "done"


def claims_done(config, run_dir, threads, imports):
    return "done"  # as a worker on another filesystem: its marker never reaches the driver


if mode == "mismatch":  # this driver pretends to be another Ray and Python
    import ray._private.utils
    ray._private.utils.compute_version_info = lambda: ("2.0.0", "3.11.0")
if mode == "preinit":  # a notebook that joined the cluster itself
    import ray
    ray.init(address=address, include_dashboard=False, log_to_driver=False)

from samlens.errors import EngineError
from samlens.train import launchers

task = launchers.Task({"marker": str(out / "crashed")}, str(out / "run"))
run_fn = crash_once if mode == "crash" else claims_done
options = {} if mode == "preinit" else {"address": address}
try:
    outcomes = launchers.launch("ray", [task], run_fn=run_fn, max_retries=retries, **options)
except EngineError as err:
    print(f"EngineError: {err}")
    sys.exit(2)
print(json.dumps([dataclasses.asdict(o) for o in outcomes]))
if mode == "preinit":
    print(f"still initialised: {ray.is_initialized()}")
"""


def _drive(cluster: Cluster, mode: str, out: Path, retries: int = 1) -> subprocess.CompletedProcess:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", DRIVER, mode, cluster.address, str(out), str(retries)]
    return subprocess.run(cmd, cwd=out, env=cluster.env(), capture_output=True, text=True, timeout=300)


def _outcome(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    [outcome] = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("[")))
    return outcome


@pytest.mark.slow
@pytest.mark.parametrize("retries, state", [(1, "done"), (0, "error")])
def test_a_worker_that_dies_is_retried_max_retries_times(ray_cluster, tmp_path, retries, state):
    outcome = _outcome(_drive(ray_cluster, "crash", tmp_path, retries))
    assert (tmp_path / "crashed").exists()  # the first attempt did die
    assert outcome["state"] == state, outcome
    if state == "error":
        assert "WorkerCrashedError" in outcome["message"] and "\n" not in outcome["message"], outcome


@pytest.mark.slow
def test_a_done_the_driver_cannot_see_is_an_error_and_a_running_ray_is_used_as_is(ray_cluster, tmp_path):
    result = _drive(ray_cluster, "preinit", tmp_path)
    outcome = _outcome(result)
    assert outcome["state"] == "error"
    expected = f"the worker reported done but {tmp_path / 'run'}/done is not visible here"
    assert outcome["message"].startswith(expected), outcome
    assert "using the Ray instance already running in this process (2 CPUs)" in result.stdout
    assert "still initialised: True" in result.stdout  # not the launcher's to shut down


def _assert_one_error_line(result: subprocess.CompletedProcess, address: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"samlens sweep: error: cannot connect to the Ray cluster at {address}: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0].removeprefix(prefix)


def test_an_unreachable_address_is_one_line_and_exit_2_at_once(tmp_path):
    _grid(tmp_path, [0])
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "PYTHONPATH": str(HERE)}
    start = time.monotonic()
    args = ["sweep", "launch", "tiny.yaml", "--launcher", "ray", "--ray-address", address]
    result = _samlens(args, tmp_path, env)
    assert _assert_one_error_line(result, address) == "Connection refused"
    assert time.monotonic() - start < 60


@pytest.mark.slow
@pytest.mark.parametrize(
    "auth, expected",
    [
        ({"RAY_AUTH_MODE": None, "RAY_AUTH_TOKEN": None}, "RAY_AUTH_MODE is currently 'disabled'"),
        ({"RAY_AUTH_TOKEN": "0" * 64}, "Authentication token is missing or incorrect"),
    ],
    ids=["no-token", "wrong-token"],
)
def test_a_refused_token_is_one_line_naming_the_cause(ray_cluster, tmp_path, auth, expected):
    _grid(tmp_path, [0])
    args = ["sweep", "launch", "tiny.yaml", "--launcher", "ray", "--ray-address", ray_cluster.address]
    start = time.monotonic()
    result = _samlens(args, tmp_path, ray_cluster.env(**auth))
    cause = _assert_one_error_line(result, ray_cluster.address)
    assert cause.startswith("AuthenticationError: ") and expected in cause, cause
    assert time.monotonic() - start < 60
    assert not (tmp_path / "sweep").exists() or not _runs(tmp_path / "sweep")


@pytest.mark.slow
def test_a_version_mismatch_is_one_line(ray_cluster, tmp_path):
    result = _drive(ray_cluster, "mismatch", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("EngineError")]
    prefix = f"EngineError: cannot connect to the Ray cluster at {ray_cluster.address}: Version mismatch"
    assert line.startswith(prefix), line
    assert "Ray: 2.0.0" in line


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_max_retries_must_be_a_count(bad):
    from samlens.errors import ConfigError
    from samlens.train import launchers

    task = launchers.Task({}, "unused")
    with pytest.raises(ConfigError, match=r"^--ray-retries must be an integer >= 0, got "):
        launchers.launch("ray", [task], address="127.0.0.1:1", max_retries=bad, run_fn=lambda *a: "done")

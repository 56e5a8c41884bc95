"""A scripted stand-in for SLURM's sbatch, srun, sacct, scontrol and scancel, enough for submitit.

``install(bin_dir, state_dir)`` writes the five commands into ``bin_dir`` (put it first on PATH).
``sbatch SCRIPT`` records the script, answers ``Submitted batch job N`` and starts a detached
supervisor that runs every array task of the script locally (at most the array's ``%P`` at a
time) with the environment SLURM gives a task (SLURM_JOB_ID, SLURM_ARRAY_JOB_ID/TASK_ID,
SLURM_RESTART_COUNT, SLURM_NTASKS, ...). ``srun`` starts SLURM_NTASKS copies of its command with
SLURM_PROCID/SLURM_LOCALID. ``scontrol requeue A_a`` marks a task: when its script exits, the
supervisor runs it again with SLURM_RESTART_COUNT + 1, as SLURM restarts a requeued job. ``sacct``
reports each task's state from the supervisor's files. Every call is appended to ``calls.log``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = ("sbatch", "srun", "sacct", "scontrol", "scancel")


def install(bin_dir: Path, state_dir: Path) -> dict[str, str]:
    """Write the commands; returns the environment to run submitit under (PATH, state dir)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(
            f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\n"
            f"from slurm_standin import main\nsys.exit(main({name!r}, sys.argv[1:]))\n"
        )
        path.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_STANDIN_DIR": str(state_dir)}


def _state() -> Path:
    return Path(os.environ["SLURM_STANDIN_DIR"])


def _log(name: str, argv: list[str]) -> None:
    with open(_state() / "calls.log", "a") as fh:
        fh.write(" ".join([name, *argv]) + "\n")


def main(name: str, argv: list[str]) -> int:
    if name == "sbatch" and argv[:1] == ["--supervise"]:
        return _supervise(argv[1])
    _log(name, argv)
    return {"sbatch": _sbatch, "srun": _srun, "sacct": _sacct, "scontrol": _scontrol, "scancel": _scancel}[
        name
    ](argv)


def _directive(script: str, key: str) -> str | None:
    match = re.search(rf"^#SBATCH --{key}=(\S+)", script, re.MULTILINE)
    return match.group(1) if match else None


def _sbatch(argv: list[str]) -> int:
    script_path = Path(argv[-1])
    counter = _state() / "next_id"
    job_id = int(counter.read_text()) if counter.exists() else 1000
    counter.write_text(str(job_id + 1))
    job = _state() / str(job_id)
    job.mkdir()
    shutil.copy(script_path, job / "script.sh")
    (job / "cwd").write_text(os.getcwd())
    script = script_path.read_text()
    array = _directive(script, "array")
    tasks = 1
    if array:
        first, last = re.match(r"(\d+)-(\d+)", array).groups()  # type: ignore[union-attr]
        tasks = int(last) - int(first) + 1
    (job / "tasks").write_text(str(tasks) if array else "")
    for i in range(tasks):
        (job / f"{i}.state").write_text("PENDING")
    with open(job / "supervisor.log", "w") as log:  # the child keeps its own copy of the handle
        subprocess.Popen(
            [sys.executable, str(Path(sys.argv[0])), "--supervise", str(job_id)],
            start_new_session=True,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    print(f"Submitted batch job {job_id}")
    return 0


def _supervise(job_id: str) -> int:
    job = _state() / job_id
    script = (job / "script.sh").read_text()
    is_array = bool((job / "tasks").read_text())
    tasks = int((job / "tasks").read_text() or 1)
    array = _directive(script, "array") or ""
    parallel = int(array.split("%")[1]) if "%" in array else tasks
    ntasks = int(_directive(script, "ntasks-per-node") or 1)

    def run_task(i: int) -> None:
        restarts = 0
        while True:
            env = {
                **os.environ,
                # Array tasks have ids of their own; a requeued job keeps its id.
                "SLURM_JOB_ID": str(int(job_id) * 1000 + i + 1) if is_array else job_id,
                "SLURM_RESTART_COUNT": str(restarts),
                "SLURM_NTASKS": str(ntasks),
                "SLURM_JOB_NUM_NODES": "1",
                "SLURM_JOB_NODELIST": "localhost",
                "SLURMD_NODENAME": "localhost",
                "SLURM_NODEID": "0",
            }
            if is_array:
                env.update(SLURM_ARRAY_JOB_ID=job_id, SLURM_ARRAY_TASK_ID=str(i))
            (job / f"{i}.state").write_text("RUNNING")
            proc = subprocess.Popen(["bash", str(job / "script.sh")], env=env, cwd=(job / "cwd").read_text())
            (job / f"{i}.pid").write_text(str(proc.pid))
            code = proc.wait()
            flag = job / f"{i}.requeue"
            if flag.exists():
                flag.unlink()
                (job / f"{i}.state").write_text("REQUEUED")
                restarts += 1
                continue
            (job / f"{i}.state").write_text("COMPLETED" if code == 0 else "FAILED")
            return

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(run_task, range(tasks)))
    return 0


def _srun(argv: list[str]) -> int:
    outputs: dict[str, str] = {}
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag in ("--output", "--error"):
            outputs[flag] = argv.pop(0)
    env = os.environ
    ntasks = int(env.get("SLURM_NTASKS", "1"))
    procs = []
    for k in range(ntasks):

        def expand(pattern: str, k: int = k) -> str:
            return (
                pattern.replace("%A", env.get("SLURM_ARRAY_JOB_ID", env["SLURM_JOB_ID"]))
                .replace("%a", env.get("SLURM_ARRAY_TASK_ID", "0"))
                .replace("%j", env["SLURM_JOB_ID"])
                .replace("%t", str(k))
            )

        task_env = {**env, "SLURM_PROCID": str(k), "SLURM_LOCALID": str(k)}
        with contextlib.ExitStack() as files:
            out, err = (
                files.enter_context(open(expand(outputs[f]), "a")) if f in outputs else None
                for f in ("--output", "--error")
            )
            procs.append(subprocess.Popen(argv, env=task_env, stdout=out, stderr=err))
    for sig in (signal.SIGTERM, signal.SIGUSR2):  # srun forwards these to its tasks
        signal.signal(sig, lambda signum, frame: [p.send_signal(signum) for p in procs])
    codes = [p.wait() for p in procs]
    return max(abs(c) for c in codes)


def _tasks(job: Path) -> list[int]:
    return sorted(int(p.stem) for p in job.glob("*.state"))


def _sacct(argv: list[str]) -> int:
    ids = [argv[i + 1] for i, a in enumerate(argv) if a == "-j"]
    print("JobID|State|NodeList")
    for job_id in ids:
        job = _state() / job_id.split("_")[0]
        if not job.is_dir():
            continue
        array = bool((job / "tasks").read_text())
        for i in _tasks(job):
            name = f"{job.name}_{i}" if array else job.name
            print(f"{name}|{(job / f'{i}.state').read_text()}|localhost")
    return 0


def _task_dir(job_id: str) -> tuple[Path, int] | None:
    base, _, task = job_id.partition("_")
    job = _state() / base
    if not job.is_dir() or not (job / f"{task or 0}.state").exists():
        return None
    return job, int(task or 0)


def _scontrol(argv: list[str]) -> int:
    if argv[:1] != ["requeue"] or len(argv) != 2:
        print(f"scontrol stand-in: unsupported {argv}", file=sys.stderr)
        return 1
    found = _task_dir(argv[1])
    if found is None:
        print("scontrol: error: Invalid job id specified", file=sys.stderr)
        return 1
    job, task = found
    (job / f"{task}.requeue").write_text(str(time.time()))
    return 0


def _scancel(argv: list[str]) -> int:
    for job_id in [a for a in argv if not a.startswith("-") and a[0].isdigit()]:
        found = _task_dir(job_id)
        if found is not None:
            pid = found[0] / f"{found[1]}.pid"
            if pid.exists():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid.read_text()), signal.SIGTERM)
    return 0

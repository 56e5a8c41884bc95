"""The launcher options ``samlens sweep launch`` and ``samlens reproduce`` share: which engine runs
the points, and what each run asks of it (Ray's cluster and retries, SLURM's resources)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from samlens.errors import ConfigError

_ENGINE_MODULE = {"ray": ("ray", "ray"), "slurm": ("submitit", "slurm")}
# Each engine's own options with their defaults: one given for another launcher is a mistake.
_ENGINE_OPTIONS = {
    "ray": {"ray_address": None, "ray_retries": 1},
    "slurm": {
        "cluster": "auto",
        "partition": None,
        "time_min": 240,
        "mem": None,
        "account": None,
        "qos": None,
        "constraint": None,
        "tasks_per_run": 1,
        "slurm_param": [],
        "slurm_setup": [],
    },
}
_SHARED = {"cpus_per_task": 1, "gpus_per_task": 0}
# The one place the defaults live: the parser's and the foreign-option check's.
_DEFAULT: dict[str, Any] = {**_SHARED, **_ENGINE_OPTIONS["ray"], **_ENGINE_OPTIONS["slurm"]}


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher`` and every engine's options, grouped by engine in ``--help``."""
    from samlens.train.launchers import LAUNCHERS

    names = "{" + ",".join(LAUNCHERS.names()) + "}"
    # Checked by check_launcher rather than argparse choices, so a wrong name is the one-line error.
    parser.add_argument("--launcher", default="local", metavar=names, help="engine (default local)")
    common = parser.add_argument_group("ray and slurm: resources per run")
    common.add_argument(
        "--cpus-per-task", type=int, default=_DEFAULT["cpus_per_task"], help="CPUs per run (default 1)"
    )
    common.add_argument(
        "--gpus-per-task",
        type=int,
        default=_DEFAULT["gpus_per_task"],
        help="GPUs per run process (default 0)",
    )
    ray = parser.add_argument_group("ray")
    ray.add_argument(
        "--ray-address",
        help="a running cluster (host:port or 'auto'; default: $RAY_ADDRESS, else a new local instance)",
    )
    ray.add_argument(
        "--ray-retries",
        type=int,
        default=_DEFAULT["ray_retries"],
        help="retries of a run whose worker died (default 1)",
    )
    slurm = parser.add_argument_group("slurm (submitit)")
    slurm.add_argument(
        "--cluster",
        choices=["auto", "slurm", "local", "debug"],
        default=_DEFAULT["cluster"],
        help="submitit executor (auto = SLURM when sbatch exists, else local processes)",
    )
    slurm.add_argument("--partition", help="partition")
    slurm.add_argument(
        "--time",
        "--timeout-min",
        dest="time_min",
        type=int,
        default=_DEFAULT["time_min"],
        help="minutes per job (default 240)",
    )
    slurm.add_argument("--mem", help="memory per job, e.g. 16G")
    slurm.add_argument("--account", help="account to charge")
    slurm.add_argument("--qos", help="quality of service")
    slurm.add_argument("--constraint", help="node features, e.g. a100")
    slurm.add_argument(
        "--tasks-per-run",
        type=int,
        default=_DEFAULT["tasks_per_run"],
        help="processes per run: > 1 trains each run with DDP",
    )
    slurm.add_argument(
        "--slurm-param",
        action="append",
        default=_DEFAULT["slurm_param"],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. gres=gpu:1 (repeatable)",
    )
    slurm.add_argument(
        "--slurm-setup",
        action="append",
        default=_DEFAULT["slurm_setup"],
        metavar="LINE",
        help="a shell line run in the job before the run, e.g. 'module load cuda' (repeatable)",
    )


def check_launcher(name: str) -> None:
    """An unknown launcher, or one whose engine is not installed, is one line."""
    from samlens.train import launchers

    if name not in launchers.LAUNCHERS:
        names = ", ".join(launchers.LAUNCHERS.names())
        raise ConfigError(f"unknown launcher {name!r}; valid choices: {names}")
    if name in _ENGINE_MODULE:
        module, extra = _ENGINE_MODULE[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"the {name} launcher needs {module}: pip install 'samlens[{extra}]'")


def launcher_options(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """The keyword options of ``launchers.launch`` for ``args.launcher`` (checked here, before
    anything is submitted)."""
    check_launcher(args.launcher)
    foreign = {
        k: v for engine, opts in _ENGINE_OPTIONS.items() if engine != args.launcher for k, v in opts.items()
    }
    if args.launcher == "local":
        foreign.update(_SHARED)
    for key, default in foreign.items():
        if getattr(args, key, default) != default:
            flag = "--time" if key == "time_min" else "--" + key.replace("_", "-")
            raise ConfigError(f"{flag} is not an option of the {args.launcher} launcher")
    if args.cpus_per_task < 1:
        raise ConfigError(f"--cpus-per-task must be >= 1, got {args.cpus_per_task}")
    if args.gpus_per_task < 0:
        raise ConfigError(f"--gpus-per-task must be >= 0, got {args.gpus_per_task}")
    options: dict[str, Any] = {"cpus_per_task": args.cpus_per_task, "gpus_per_task": args.gpus_per_task}
    if args.launcher == "ray":
        if args.ray_retries < 0:
            raise ConfigError(f"--ray-retries must be >= 0, got {args.ray_retries}")
        options.update(address=args.ray_address, max_retries=args.ray_retries)
    if args.launcher == "slurm":
        from samlens.train.launchers.slurm import SlurmOptions, parse_params

        options = {
            "cluster": None if args.cluster == "auto" else args.cluster,
            "folder": out_dir / ".submitit",
            "slurm": SlurmOptions(
                partition=args.partition,
                time_min=args.time_min,
                cpus_per_task=args.cpus_per_task,
                gpus_per_task=args.gpus_per_task,
                tasks_per_run=args.tasks_per_run,
                mem=args.mem,
                account=args.account,
                qos=args.qos,
                constraint=args.constraint,
                setup=tuple(args.slurm_setup),
                params=parse_params(args.slurm_param),
            ),
        }
    return options

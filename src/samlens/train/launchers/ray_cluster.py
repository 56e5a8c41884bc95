"""The ``ray`` launcher: one Ray task per point, on a cluster it joins or on a local instance it starts.

Where the tasks run, in this order (the launcher says which, in one line):

- a Ray already initialised in this process (a notebook, a test): used as it is, left running;
- ``address`` (``--ray-address``: the head's ``host:port``, or ``auto`` for the cluster ``ray start``
  left on this machine), else ``RAY_ADDRESS``: that cluster is joined, and left running at the end;
- otherwise a local instance with ``workers`` CPUs is started, and shut down at the end. It is started
  explicitly: Ray's own default would silently join any cluster ``ray start`` left on this machine.

Joining a cluster fails within about 45 s at worst, as one line (:class:`EngineError`) naming the
cause Ray buried in its traceback: a refused connection, a missing or wrong token, a version mismatch.
(Ray 2.60's ``ray start`` turns token auth on; a driver joining by address then needs
``RAY_AUTH_MODE=token`` and the cluster's token, which Ray's message says.) Left to itself, Ray 2.60
tries 20 times, about 40 s each, against an address that does not answer; see :data:`JOIN_ENV`.

A task whose worker process dies (killed, out of memory, a node lost) is retried ``max_retries`` times.
An exception in the run is not retried: the same config would fail the same way. A retry is safe
because runs are idempotent (a retried run resumes from its checkpoint, or finds it done).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from samlens._optional import require
from samlens.errors import ConfigError, EngineError
from samlens.train.launchers.base import LAUNCHERS, Batch, Outcome, _Collector

# Ray's settings while joining, chosen so a failed join ends in under a minute: 2 attempts (Ray's
# default is 20, 1 s apart), each giving the GCS 10 s to answer (default 30) after two 5 s channel
# connects of its own. Applied only around ``ray.init``; Ray reads RAY_* settings once per process.
JOIN_ENV = {"RAY_gcs_server_port_wait_time_s": "2", "RAY_py_gcs_connect_timeout_s": "10"}

# How long a plain TCP connect to the address may take before the join gives up: a refused or
# unroutable address fails here at once with a clear cause, instead of after Ray's attempts.
PROBE_TIMEOUT_S = 10


# The launcher says in its own line where the tasks run; Ray's INFO lines would repeat it, and the
# workers' output would interleave with the finish lines.
_QUIET: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)


def _ray_cause(err: BaseException) -> BaseException:
    return getattr(err, "cause", None) or err


def _one_line(err: BaseException) -> str:
    """The innermost cause of ``err`` as one line: Ray wraps a refused token or a timeout in a generic
    ConnectionError whose cause holds a formatted traceback, whose last line is the exception."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if "Traceback (most recent call last)" in text:
        return lines[-1].removeprefix("ray.exceptions.")
    return " ".join(lines)  # e.g. a version mismatch, one field a line


def _reload_ray_config() -> None:
    # Ray itself re-reads its RAY_* settings this way when ray.init turns on token auth.
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):  # another Ray version: its own (longer) waits apply
        pass


def _probe(address: str) -> None:
    """Raise ConnectionError unless ``address`` (``host:port``) accepts a TCP connection."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except TimeoutError:
        raise ConnectionError(f"no answer within {PROBE_TIMEOUT_S} s") from None
    except OSError as err:
        raise ConnectionError(err.strerror or str(err)) from None


@contextlib.contextmanager
def _held_stderr() -> Iterator[Callable[[], None]]:
    """Hold back what is written to file descriptor 2 (Ray's C++ core logs there, one warning per
    failed attempt); the caller replays it with the function this yields, else it is dropped."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to hold back
        yield lambda: None
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)

        def replay() -> None:
            held.seek(0)
            os.write(saved, held.read())

        try:
            yield replay
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _join(ray: Any, address: str) -> None:
    saved = {key: os.environ.get(key) for key in JOIN_ENV}

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    os.environ.update(JOIN_ENV)
    _reload_ray_config()
    try:
        _probe(address)
        # A failed join's log is replaced by the one line naming its cause; a join's is replayed.
        with _held_stderr() as replay:
            ray.init(address=address, **_QUIET)
            replay()
    except Exception as err:
        if ray.is_initialized():  # a version mismatch is found after connecting
            ray.shutdown()
        restore()
        _reload_ray_config()
        raise EngineError(f"cannot connect to the Ray cluster at {address}: {_one_line(err)}") from None
    # The connected driver keeps the short waits until shutdown (only new GCS clients see them);
    # the environment goes back at once, so nothing started later inherits them.
    restore()


def _cpus(ray: Any) -> str:
    cpus = ray.cluster_resources().get("CPU", 0)
    return f"{cpus:g} CPU" + ("" if cpus == 1 else "s")


def _gcs_address(ray: Any, fallback: str) -> str:
    try:
        return ray.get_runtime_context().gcs_address or fallback
    except Exception:  # Ray Client connections (ray://) have no GCS address of their own
        return fallback


def _connect(ray: Any, batch: Batch, address: str | None) -> str:
    """Initialise Ray for ``batch``; returns how: "joined", "started" or "" (already running)."""
    if ray.is_initialized():
        batch.say(f"using the Ray instance already running in this process ({_cpus(ray)})")
        return ""
    source = "" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        _join(ray, address)
        via = f", from {source}" if source else ""
        batch.say(f"joined the Ray cluster at {_gcs_address(ray, address)} ({_cpus(ray)}{via})")
        return "joined"
    batch.say(f"starting a local Ray instance with {batch.workers} CPUs")
    try:
        ray.init(address="local", num_cpus=batch.workers, **_QUIET)
    except Exception as err:
        if ray.is_initialized():
            ray.shutdown()
        raise EngineError(f"cannot start a local Ray instance: {_one_line(err)}") from None
    return "started"


def _check_retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"--ray-retries must be an integer >= 0, got {max_retries!r}")
    return max_retries


@LAUNCHERS.register("ray")
def launch_ray(
    batch: Batch,
    address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    max_retries: int = 1,
    **_: Any,
) -> list[Outcome]:
    """One Ray task per point, each asking for ``cpus_per_task`` CPUs and ``gpus_per_task`` GPUs
    (on a cluster these, not ``workers``, decide how many run at once); a task whose worker dies is
    retried ``max_retries`` times. See the module docstring for where the tasks run."""
    max_retries = _check_retries(max_retries)
    with require("ray"):
        import ray
    how = _connect(ray, batch, address)
    try:
        remote = ray.remote(
            num_cpus=cpus_per_task,
            num_gpus=gpus_per_task,
            max_retries=max_retries,
            retry_exceptions=False,
        )(batch.run_fn)
        threads = max(1, int(cpus_per_task))
        refs = {remote.remote(t.config, t.run_dir, threads, t.imports): i for i, t in enumerate(batch.tasks)}
        collect = _Collector(batch)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                collect.result(refs[ref], lambda ref=ref: ray.get(ref), _ray_cause)
        return collect.ordered()
    finally:
        if how:
            ray.shutdown()
        if how == "joined":  # the join's short waits end with it
            _reload_ray_config()

"""``run_experiment``: train one config into one run directory, resumably.

Order of work, chosen so that a user mistake never leaves a half-written run: validate
names, build dataset, model and optimizer, check the directory is writable; only then
write ``config.yaml``, ``meta.json`` and the ``running`` marker. ``done`` is written last.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from samlens.errors import ConfigError
from samlens.train import build, rundir
from samlens.train.config import ExperimentConfig, config_hash, derive_seed, dump_config, flatten_config
from samlens.train.distributed import DistContext, default_threads, init_distributed, pick_device
from samlens.train.evaluate import evaluate
from samlens.train.meta import collect_meta, device_info
from samlens.train.probing import make_prober
from samlens.train.schedule import build_scheduler

StepHook = Callable[[int], None]


class _Diverged(Exception):
    """The training loss became non-finite."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


def probe_record(cfg: ExperimentConfig, step: int, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """A ``results.jsonl`` record for a probe made after training (``samlens probe``)."""
    return {
        "event": "probe",
        "step": step,
        "epoch": epoch,
        "time": _now(),
        "metrics": metrics,
        "config": flatten_config(cfg),
    }


# ---------------------------------------------------------------------------------------
# directory preparation


def _prepare_dir(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Create ``run_dir`` (or accept an existing one for the same config) or raise ConfigError."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write run directory {str(run_dir)!r}: {err.strerror or err}") from None


def _check_same_config(run_dir: Path, cfg: ExperimentConfig) -> None:
    """Refuse to resume (or skip) a run directory that belongs to another config."""
    if (run_dir / rundir.CONFIG).exists():
        old = rundir.read_config(run_dir)
        if config_hash(old) != config_hash(cfg):
            raise ConfigError(
                f"run directory {str(run_dir)!r} holds a different config "
                f"(hash {config_hash(old)}, requested {config_hash(cfg)}); use another directory"
            )


def _open_log(run_dir: Path | None, quiet: bool, name: str) -> logging.Logger:
    logger = logging.getLogger(f"samlens.run.{name}.{id(run_dir)}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    if run_dir is not None:
        fh = logging.FileHandler(run_dir / rundir.LOG)
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    if not quiet:
        sh = logging.StreamHandler(sys.stderr)
        sh.setFormatter(fmt)
        logger.addHandler(sh)
    return logger


def _close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------
# reproducibility


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """Deterministic kernels for the duration of the run (restored afterwards)."""
    if not enabled:
        yield
        return
    previous = torch.are_deterministic_algorithms_enabled()
    cudnn = torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.backends.cudnn.benchmark = cudnn


def _rng_state() -> dict[str, Any]:
    """Every generator's state as tensors, numbers and lists, so checkpoints load with
    ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy, py = state["numpy"], state["python"]
    if isinstance(npy, dict):
        keys = npy["keys"].numpy().astype(np.uint32)
        np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    else:  # checkpoints written before the tensor layout
        np.random.set_state(npy)
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    else:
        random.setstate(py)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, ctx: DistContext) -> list[list[int]]:
    """This process's batches of one epoch: a permutation drawn from (seed, epoch) only.

    Depending on nothing else makes the data order identical for paired runs and
    reproducible after a resume without saving a sampler state. Under DDP each global
    batch of ``batch_size · world_size`` is dealt out across ranks.
    """
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    global_batch = batch_size * ctx.world_size
    # Dropping the ragged tail keeps BatchNorm away from batches of one example.
    count = n // global_batch if n >= global_batch else 1
    batches = []
    for b in range(count):
        chunk = order[b * global_batch : (b + 1) * global_batch]
        batches.append(chunk[ctx.rank :: ctx.world_size])
    return batches


# ---------------------------------------------------------------------------------------
# the run


class _Run:
    """State of one training run; split from ``run_experiment`` to keep each step readable."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: Path,
        quiet: bool,
        step_hook: StepHook | None,
        ctx: DistContext,
        threads: int,
    ) -> None:
        self.cfg, self.run_dir, self.quiet, self.step_hook, self.ctx = cfg, run_dir, quiet, step_hook, ctx
        self.threads = threads
        self.seed = derive_seed(cfg)
        self.flat = flatten_config(cfg)
        self.device = pick_device(ctx)
        self.writes = ctx.is_main
        self.tb = None
        self.removed_temp: list[Path] = []

    # -- setup -------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        build.check_names(cfg)
        if cfg.train.tensorboard:
            try:
                from torch.utils import tensorboard  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "train.tensorboard needs the tensorboard package (pip install samlens[tensorboard])"
                ) from None
        self.dataset = build.build_dataset(cfg)
        model = build.build_model(cfg, self.dataset)
        model.to(self.device)
        if cfg.train.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.net: nn.Module = model
        if self.ctx.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.opt = build.build_optimizer(cfg, model)
        self.train_set = self.dataset.split("train", train=True)
        n = len(self.train_set)
        if n == 0:
            raise ConfigError(f"dataset {cfg.data.name!r} has an empty train split")
        self.steps_per_epoch = len(epoch_batches(n, cfg.data.batch_size, self.seed, 0, self.ctx))
        total = cfg.train.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.train.steps) if cfg.train.steps else total
        self.scheduler = build_scheduler(self.opt, cfg.train.schedule, self.total_steps)
        self.prober = make_prober(cfg, self.dataset, self.device)
        takes_context = "ascent_context" in inspect.signature(self.opt.step).parameters
        self.ascent_context = takes_context and self.ctx.enabled

    def start_files(self) -> None:
        """config.yaml, meta.json (first start only), the running marker and the log."""
        run_dir, cfg = self.run_dir, self.cfg
        if self.writes:
            if not (run_dir / rundir.CONFIG).exists():
                dump_config(cfg, run_dir / rundir.CONFIG)
            if not (run_dir / rundir.META).exists():
                perturbs = cfg.optim.name not in build.PLAIN_OPTIMIZERS
                meta = collect_meta(
                    config_hash=config_hash(cfg),
                    device=device_info(self.device),
                    threads=self.threads,
                    seeds={"train.seed": cfg.train.seed, "derived": self.seed},
                    world_size=self.ctx.world_size,
                    ascent="per_device" if perturbs else None,
                    examples_per_perturbation=build.examples_per_perturbation(cfg, self.opt),
                    group_names=list(self.dataset.group_names),
                    attribute_names=list(self.dataset.attribute_names),
                    steps_per_epoch=self.steps_per_epoch,
                    total_steps=self.total_steps,
                )
                rundir.atomic_write_text(run_dir / rundir.META, json.dumps(meta, indent=2) + "\n")
            marker = {"pid": os.getpid(), "host": collect_meta()["host"], "started": _now()}
            rundir.atomic_write_text(run_dir / rundir.RUNNING, json.dumps(marker) + "\n")
        self.log = _open_log(run_dir if self.writes else None, self.quiet or not self.writes, cfg.name)
        self.seen = {(r.get("event"), r.get("step")) for r in rundir.read_results(run_dir)}
        if self.removed_temp:
            names = ", ".join(p.name for p in self.removed_temp)
            self.log.info(f"removed temp files of an interrupted write: {names}")
        self.log.info(f"torch threads: {self.threads}")
        if self.writes and cfg.train.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tensorboard"))

    # -- checkpoints -------------------------------------------------------------------
    def restore(self) -> None:
        self.step, self.epoch, self.step_in_epoch = 0, 0, 0
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.seen_examples = 0
        self.last: dict[str, float] = {}
        path = self.run_dir / rundir.CHECKPOINT
        remedy = "; delete it to train the run again from the start"
        try:
            ckpt = rundir.load_checkpoint(self.run_dir, map_location=str(self.device))
            if ckpt is None:
                _seed_all(self.seed)
                return
            rundir.load_weights(self.model, ckpt["model"], path)
        except ConfigError as err:
            raise ConfigError(f"{err}{remedy}") from None
        try:
            self.opt.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            _set_rng_state(ckpt["rng"])
            self.step, self.epoch, self.step_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]
            self.loss_sum = ckpt["loss_sum"].to(self.device)
            self.correct = ckpt["correct"].to(self.device)
            self.seen_examples = ckpt["seen_examples"]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            detail = " ".join(str(err).split())[:300]  # one line, however torch words it
            raise ConfigError(
                f"cannot resume from checkpoint {str(path)!r}: {type(err).__name__}: {detail}{remedy}"
            ) from None
        self.last = dict(ckpt.get("last_metrics") or self._recorded_eval())
        self.log.info(f"resumed from step {self.step} (epoch {self.epoch}, +{self.step_in_epoch} steps)")

    def _recorded_eval(self) -> dict[str, float]:
        """The eval metrics recorded at the checkpoint's step (checkpoints without ``last_metrics``)."""
        if self.step < self.total_steps:
            return {}
        evals = [r for r in rundir.read_results(self.run_dir) if r.get("event") == "eval"]
        return next((r["metrics"] for r in reversed(evals) if r.get("step") == self.step), {})

    def save(self) -> None:
        if not self.writes:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "loss_sum": self.loss_sum,
            "correct": self.correct,
            "seen_examples": self.seen_examples,
            # The final event needs the last epoch's train loss/accuracy, whose sums are
            # reset before this save; a resume between this save and that event reads them here.
            "last_metrics": dict(self.last),
            "config_hash": config_hash(self.cfg),
        }
        rundir.atomic_save(self.run_dir / rundir.CHECKPOINT, lambda fh: torch.save(state, fh))

    # -- events ------------------------------------------------------------------------
    def emit(self, event: str, metrics: dict[str, Any], *, dedupe: bool = True) -> None:
        """Append one event; an event already recorded at this step (before a resume) is kept."""
        if not self.writes or (dedupe and (event, self.step) in self.seen):
            return
        self.seen.add((event, self.step))
        record = {
            "event": event,
            "step": self.step,
            "epoch": self.epoch,
            "time": _now(),
            "metrics": metrics,
            "config": self.flat,
        }
        rundir.append_result(self.run_dir, record)
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(f"{event}/{key}", value, self.step)

    # -- training ----------------------------------------------------------------------
    def _check_finite(self) -> None:
        total = self.ctx.all_sum(self.loss_sum)
        if not bool(torch.isfinite(total)):
            raise _Diverged(f"training loss is {float(total)} at step {self.step} (epoch {self.epoch + 1})")

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        first: dict[str, torch.Tensor] = {}
        bf16 = self.cfg.train.bf16

        def closure() -> torch.Tensor:
            self.opt.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = self.net(x)
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            first.setdefault("logits", logits.detach())
            return loss

        if self.ascent_context:
            loss = self.opt.step(closure, ascent_context=self.net.no_sync())
        else:
            loss = self.opt.step(closure)
        self.scheduler.step()
        self.loss_sum += loss.detach().float() * len(y)
        self.correct += (first["logits"].argmax(1) == y).sum()
        self.seen_examples += len(y)

    def train_epoch(self, bar: Any) -> bool:
        """One (possibly resumed) epoch; False when the step budget ran out inside it."""
        cfg = self.cfg
        batches = epoch_batches(len(self.train_set), cfg.data.batch_size, self.seed, self.epoch, self.ctx)
        self.net.train()
        if not hasattr(self, "loader"):  # built once, so data.num_workers processes persist across epochs
            from samlens.data.loading import BatchLoader

            self.loader = BatchLoader(
                self.train_set,
                num_workers=cfg.data.num_workers,
                device=self.device,
                channels_last=cfg.train.channels_last,
            )
        start = self.step_in_epoch
        for x, y in self.loader.epoch(batches[start:], seed=self.seed, epoch=self.epoch, start=start):
            if self.step >= self.total_steps:
                return False
            self.train_step(x, y)
            self.step += 1
            self.step_in_epoch += 1
            bar.update(1)
            if self.step % cfg.train.log_every == 0:
                self._check_finite()
                mean = float(self.loss_sum) / max(self.seen_examples, 1)
                lr = self.opt.param_groups[0]["lr"]
                self.log.info(
                    f"step {self.step}/{self.total_steps} epoch {self.epoch + 1} loss {mean:.4f} lr {lr:.4g}"
                )
                bar.set_postfix(loss=f"{mean:.4f}")
            if cfg.train.checkpoint_every and self.step % cfg.train.checkpoint_every == 0:
                self._check_finite()
                self.save()
            if self.step_hook is not None:
                self.step_hook(self.step)
        return True

    def end_of_epoch(self, final: bool) -> dict[str, float]:
        self._check_finite()
        n = max(self.seen_examples, 1)
        train = {"train_loss": float(self.loss_sum) / n, "train_acc": float(self.correct) / n}
        metrics: dict[str, float] = {}
        every = self.cfg.train.eval_every
        if final or (every and self.epoch % every == 0):
            metrics = {**train, **self._evaluate()}
            self.emit("eval", metrics)
            summary = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("train_loss", "test_acc") if k in metrics)
            self.log.info(f"epoch {self.epoch}: {summary}")
        probe_every = self.cfg.probe.every
        if self.prober is not None and probe_every and self.epoch % probe_every == 0 and not final:
            probe = self._probe()
            if probe:
                self.emit("probe", probe)
        return metrics

    def _evaluate(self) -> dict[str, float]:
        if not self.writes:
            return {}
        return evaluate(
            self.model,
            self.dataset,
            device=self.device,
            channels_last=self.cfg.train.channels_last,
            bf16=self.cfg.train.bf16,
            bn_stats=self.cfg.train.bn_stats,
        )

    def _probe(self) -> dict[str, float]:
        if not self.writes or self.prober is None:
            return {}
        return self.prober(self.model, self.epoch) or {}

    def loop(self) -> None:
        from tqdm.auto import tqdm

        show = not self.quiet and self.writes and sys.stderr.isatty()
        with tqdm(total=self.total_steps, initial=self.step, disable=not show, desc=self.cfg.name) as bar:
            while self.step < self.total_steps:
                completed = self.train_epoch(bar)
                finished = self.step >= self.total_steps
                if completed:
                    self.epoch += 1
                    self.step_in_epoch = 0
                if completed or finished:
                    self.last = self.end_of_epoch(final=finished)
                if completed:
                    self.loss_sum.zero_()
                    self.correct.zero_()
                    self.seen_examples = 0
                self.ctx.barrier()
                self.save()
        self.finish(self.last)

    def finish(self, last: dict[str, float]) -> None:
        metrics = dict(last) if last else self._evaluate()
        if self.prober is not None:
            probe = self._probe()
            if probe:
                self.emit("probe", probe)
            metrics.update(probe)
        self.emit("final", metrics)
        self.log.info("final: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads for the duration of the run (restored afterwards)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _skip_message(run_dir: Path) -> str | None:
    if rundir.is_done(run_dir):
        return f"{run_dir}: already done"
    if rundir.is_failed(run_dir):
        return f"{run_dir}: failed earlier; remove {run_dir / rundir.FAILED} to retry"
    return None


def run_experiment(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike[str],
    *,
    quiet: bool = False,
    step_hook: StepHook | None = None,
    threads: int | None = None,
) -> Path:
    """Train ``cfg`` into ``run_dir``; resume it if interrupted, skip it if done.

    ``step_hook(step)`` is called after every optimizer step (tests use it to interrupt a
    run). ``threads``: torch intra-op threads for this run (default: ``default_threads()``).
    A non-finite training loss ends the run with a ``failed`` event and marker; user
    mistakes raise ``ConfigError`` before anything is written. The training process holds
    an exclusive lock on the run directory: a second process on it raises ``RunBusy``.
    """
    run_dir = Path(run_dir)
    _check_same_config(run_dir, cfg)
    skip = _skip_message(run_dir)
    if skip is not None:
        if not quiet:
            print(skip, file=sys.stderr)
        return run_dir
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}")
    ctx = init_distributed()
    threads = threads or default_threads()
    run = _Run(cfg, run_dir, quiet, step_hook, ctx, threads)
    lock = rundir.RunLock(run_dir)
    with _torch_threads(threads), _deterministic(cfg.train.deterministic):
        run.build()
        # 0: train; 1: another process holds the lock; 2: it finished the run meanwhile.
        verdict = 0
        if ctx.is_main:
            _prepare_dir(run_dir, cfg)
            try:
                lock.acquire()
            except rundir.RunBusy:
                verdict = 1
            if verdict == 0 and _skip_message(run_dir) is not None:
                verdict = 2
        verdict = ctx.agree(verdict, run.device)
        try:
            if verdict == 1 and ctx.is_main:
                lock.acquire()  # raises RunBusy again, with the holder's pid
            if verdict:
                skip = _skip_message(run_dir)
                if skip is not None and not quiet and ctx.is_main:
                    print(skip, file=sys.stderr)
                return run_dir
            if ctx.is_main:
                run.removed_temp = rundir.remove_stale_temp_files(run_dir)
            return _train(run, run_dir)
        finally:
            lock.release()


def _train(run: _Run, run_dir: Path) -> Path:
    """Files, resume, loop, final event and ``done``; the caller holds the run's lock."""
    run.start_files()
    try:
        run.restore()
        run.loop()
    except _Diverged as err:
        reason = str(err)
        run.log.error(f"run failed: {reason}")
        run.emit("failed", {"reason": reason}, dedupe=False)
        if run.writes:
            rundir.atomic_write_text(run_dir / rundir.FAILED, reason + "\n")
        return run_dir
    finally:
        if run.writes:
            (run_dir / rundir.RUNNING).unlink(missing_ok=True)
        if run.tb is not None:
            run.tb.close()
        _close_log(run.log)
    if run.writes:
        if not rundir.has_final(run_dir, run.step):
            # ``done`` promises a readable final record; without one, rerunning writes it again.
            raise rundir.ResultsUnreadable(
                f"{run_dir / rundir.RESULTS}: the final record does not read back; "
                "run the same command again to rewrite it"
            )
        rundir.atomic_write_text(run_dir / rundir.DONE, _now() + "\n")
    return run_dir

"""``run_experiment``: train one config into one run directory, resumably.

Order of work, chosen so that a user mistake never leaves a half-written run: validate
names, build dataset, model and optimizer, check the directory is writable; only then
write ``config.yaml``, ``meta.json`` and the ``running`` marker. ``done`` is written last.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from samlens import rundir
from samlens.errors import ConfigError, Preempted
from samlens.optim.distributed import step_call
from samlens.train import build, checkpoint, directory, events
from samlens.train.config import (
    ExperimentConfig,
    config_hash,
    derive_seed,
    flatten_config,
    process_batch_size,
)
from samlens.train.distributed import DistContext, default_threads, init_distributed, pick_device
from samlens.train.evaluate import evaluate
from samlens.train.meta import run_meta
from samlens.train.preemption import StopRequest, stop_on_signals
from samlens.train.probing import make_prober
from samlens.train.reproducibility import deterministic, epoch_batches, torch_threads
from samlens.train.schedule import build_scheduler

StepHook = Callable[[int], None]


class _Diverged(Exception):
    """The training loss became non-finite."""


def epoch_train_metrics(state: checkpoint.TrainState, ctx: DistContext) -> dict[str, float]:
    """This epoch's train loss and accuracy over every process's examples (one all-reduce)."""
    device = state.loss_sum.device
    seen = torch.tensor(float(state.seen_examples), dtype=torch.float64, device=device)
    total = ctx.all_sum(torch.stack([state.loss_sum.double(), state.correct.double(), seen]))
    loss, correct, n = (float(v) for v in total)
    n = max(n, 1.0)
    return {"train_loss": loss / n, "train_acc": correct / n}


# ---------------------------------------------------------------------------------------
# the run


class _Run:
    """One training run: what it was built from, and its ``TrainState`` as it trains."""

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
        self.device = pick_device(ctx)
        self.writes = ctx.is_main
        self.removed_temp: list[Path] = []
        self.loader: Any = None
        self.stop_request: StopRequest | None = None

    # -- setup -------------------------------------------------------------------------
    def build(self) -> None:
        cfg = self.cfg
        build.check_names(cfg)
        events.check_loggers(cfg.train)
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
        self.batch_size = process_batch_size(cfg, self.ctx.world_size)
        self.steps_per_epoch = len(epoch_batches(n, self.batch_size, self.seed, 0, self.ctx))
        total = cfg.train.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.train.steps) if cfg.train.steps else total
        self.scheduler = build_scheduler(self.opt, cfg.train.schedule, self.total_steps)
        # after the scheduler, which wraps ``opt.step`` to count the steps it is called
        self.step_call = step_call(self.opt, self.net)
        self.prober = make_prober(cfg, self.dataset, self.device)

    def start_files(self) -> None:
        """config.yaml, meta.json (first start only), the running marker and the log."""
        run_dir, cfg = self.run_dir, self.cfg
        if self.writes:
            directory.write_start(run_dir, cfg, self._meta)
        self.log = events.open_log(run_dir if self.writes else None, self.quiet or not self.writes, cfg.name)
        self.events = events.EventWriter(run_dir, flatten_config(cfg), writes=self.writes)
        if self.removed_temp:
            names = ", ".join(p.name for p in self.removed_temp)
            self.log.info(f"removed temp files of an interrupted write: {names}")
        self.log.info(f"torch threads: {self.threads}")

    def _meta(self) -> dict[str, Any]:
        return run_meta(
            self.cfg,
            self.opt,
            self.dataset,
            device=self.device,
            threads=self.threads,
            world_size=self.ctx.world_size,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
        )

    def restore(self) -> None:
        parts = (self.model, self.opt, self.scheduler)
        self.state, resumed = checkpoint.restore(
            self.run_dir, *parts, self.device, self.seed, self.total_steps
        )
        if resumed:
            s = self.state
            self.log.info(f"resumed from step {s.step} (epoch {s.epoch}, +{s.step_in_epoch} steps)")
        names = events.run_loggers(self.cfg.train)
        self.events.open_loggers(names, name=self.cfg.name, start_step=self.state.step, log=self.log)

    def save(self) -> None:
        if self.writes:
            checkpoint.save(
                self.run_dir, self.state, self.model, self.opt, self.scheduler, config_hash(self.cfg)
            )

    def emit(self, event: str, metrics: dict[str, Any], *, dedupe: bool = True) -> None:
        """Append one event at the current step; one recorded there before a resume is kept."""
        self.events.emit(event, self.state.step, self.state.epoch, metrics, dedupe=dedupe)

    # -- training ----------------------------------------------------------------------
    def _check_finite(self) -> None:
        total = self.ctx.all_sum(self.state.loss_sum)
        if not bool(torch.isfinite(total)):
            s = self.state
            raise _Diverged(f"training loss is {float(total)} at step {s.step} (epoch {s.epoch + 1})")

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

        loss = self.step_call(closure)
        self.scheduler.step()
        self.state.add_batch(loss, (first["logits"].argmax(1) == y).sum(), len(y))

    def train_epoch(self, bar: Any) -> bool:
        """One (possibly resumed) epoch; False when the step budget ran out inside it."""
        cfg, s = self.cfg, self.state
        batches = epoch_batches(len(self.train_set), self.batch_size, self.seed, s.epoch, self.ctx)
        self.net.train()
        if self.loader is None:  # built once, so data.num_workers processes persist across epochs
            from samlens.data.loading import BatchLoader

            self.loader = BatchLoader(
                self.train_set,
                num_workers=cfg.data.num_workers,
                device=self.device,
                channels_last=cfg.train.channels_last,
            )
        start = s.step_in_epoch
        for x, y in self.loader.epoch(batches[start:], seed=self.seed, epoch=s.epoch, start=start):
            if s.step >= self.total_steps:
                return False
            self.train_step(x, y)
            s.step += 1
            s.step_in_epoch += 1
            bar.update(1)
            if s.step % cfg.train.log_every == 0:
                self._check_finite()
                mean = float(s.loss_sum) / max(s.seen_examples, 1)
                lr = self.opt.param_groups[0]["lr"]
                self.log.info(
                    f"step {s.step}/{self.total_steps} epoch {s.epoch + 1} loss {mean:.4f} lr {lr:.4g}"
                )
                bar.set_postfix(loss=f"{mean:.4f}")
                self.events.log_step(s.step, s.epoch, mean, lr)
            if cfg.train.checkpoint_every and s.step % cfg.train.checkpoint_every == 0:
                self._check_finite()
                self.save()
            if self.step_hook is not None:
                self.step_hook(s.step)
            self._stop_if_asked(saved=False)
        return True

    def end_of_epoch(self, final: bool) -> dict[str, float]:
        self._check_finite()
        s = self.state
        train = epoch_train_metrics(s, self.ctx)
        metrics: dict[str, float] = {}
        every = self.cfg.train.eval_every
        if final or (every and s.epoch % every == 0):
            metrics = {**train, **self._evaluate()}
            self.emit("eval", metrics)
            summary = ", ".join(f"{k} {metrics[k]:.4f}" for k in ("train_loss", "test_acc") if k in metrics)
            self.log.info(f"epoch {s.epoch}: {summary}")
        probe_every = self.cfg.probe.every
        if self.prober is not None and probe_every and s.epoch % probe_every == 0 and not final:
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
        return self.prober(self.model, self.state.epoch) or {}

    def loop(self) -> None:
        from tqdm.auto import tqdm

        s = self.state
        show = not self.quiet and self.writes and sys.stderr.isatty()
        with tqdm(total=self.total_steps, initial=s.step, disable=not show, desc=self.cfg.name) as bar:
            while s.step < self.total_steps:
                completed = self.train_epoch(bar)
                finished = s.step >= self.total_steps
                if completed:
                    s.end_epoch()
                if completed or finished:
                    s.last = self.end_of_epoch(final=finished)
                if completed:
                    s.reset_sums()
                self.ctx.barrier()
                self.save()
                self._stop_if_asked(saved=True)
        self.finish(s.last)

    def _stop_if_asked(self, saved: bool) -> None:
        """At a step boundary: after a SIGTERM/SIGINT, checkpoint (unless just saved) and stop."""
        request = self.stop_request
        if request is None:
            return
        asked = request.signum is not None
        if self.ctx.enabled:  # every rank stops at the same step, or the others wait forever
            asked = bool(self.ctx.all_sum(torch.tensor(float(asked), device=self.device)) > 0)
        if not asked:
            return
        if not saved:
            self._check_finite()
            self.save()
        raise request.stop(self.state.step)

    def finish(self, last: dict[str, float]) -> None:
        metrics = dict(last) if last else self._evaluate()
        if self.prober is not None:
            probe = self._probe()
            if probe:
                self.emit("probe", probe)
            metrics.update(probe)
        self.emit("final", metrics)
        self.log.info("final: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k))


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
    directory.check_same_config(run_dir, cfg)
    skip = directory.skip_message(run_dir)
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
    with torch_threads(threads), deterministic(cfg.train.deterministic):
        run.build()
        verdict = directory.claim(run_dir, lock, ctx, run.device)
        try:
            if verdict == 1 and ctx.is_main:
                lock.acquire()  # raises RunBusy again, with the holder's pid
            if verdict:
                skip = directory.skip_message(run_dir)
                if skip is not None and not quiet and ctx.is_main:
                    print(skip, file=sys.stderr)
                return run_dir
            if ctx.is_main:
                run.removed_temp = rundir.remove_stale_temp_files(run_dir)
            _train(run, run_dir)
            ctx.barrier()  # no rank returns before rank 0 has written `done` (or `failed`)
            return run_dir
        finally:
            lock.release()
            ctx.close()


def _train(run: _Run, run_dir: Path) -> Path:
    """Files, resume, loop, final event and ``done``; the caller holds the run's lock."""
    run.start_files()
    outcome = "failed"  # what the loggers are closed with
    try:
        with stop_on_signals() as request:
            run.stop_request = request
            run.restore()
            run.loop()
        outcome = "done"
    except Preempted as err:
        outcome = "stopped"
        run.log.warning(f"run preempted: {err}")
        raise
    except _Diverged as err:
        reason = str(err)
        run.log.error(f"run failed: {reason}")
        run.emit("failed", {"reason": reason}, dedupe=False)
        if run.writes:
            directory.write_failed(run_dir, reason)
        return run_dir
    finally:
        if run.writes:
            (run_dir / rundir.RUNNING).unlink(missing_ok=True)
        run.events.close(outcome)
        events.close_log(run.log)
    if run.writes:
        directory.write_done(run_dir, run.state.step)
    return run_dir

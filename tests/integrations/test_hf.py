"""SAMTrainer: the Hugging Face Trainer takes exact SAM steps (checked against a plain two-pass loop)."""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")  # the `hf` extra; CI installs it

from samlens.errors import ConfigError  # noqa: E402
from samlens.integrations.hf import SAMTrainer, TrainerSAM  # noqa: E402
from samlens.optim import SAM  # noqa: E402

RHO, LR, MICRO, ACCUM, STEPS = 0.5, 0.5, 4, 2, 3


def tiny_bert() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=2,
    )
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def token_data(n: int = 32, length: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (n, length), generator=g)
    labels = (ids[:, 0] > 25).long()  # learnable from the first token
    return [{"input_ids": ids[i], "labels": labels[i]} for i in range(n)]


class Recorder:
    """A data collator that keeps every batch it makes, in the order the Trainer consumes them."""

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []

    def __call__(self, items):
        batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        self.batches.append({k: v.clone() for k, v in batch.items()})
        return batch


def train(model, trainer_cls, tmp_path, max_grad_norm=0.0, **extra):
    recorder = Recorder()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=MICRO,
        gradient_accumulation_steps=ACCUM,
        max_steps=STEPS,
        learning_rate=LR,
        lr_scheduler_type="constant",
        max_grad_norm=max_grad_norm,
        weight_decay=0.0,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    base = torch.optim.SGD(model.parameters(), lr=LR)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=token_data(),
        data_collator=recorder,
        optimizers=(base, None),
        **extra,
    )
    trainer.train()
    # The data loader may prefetch one batch beyond the last step.
    return trainer, recorder.batches[: STEPS * ACCUM]


def window_loss(model, micro_batches) -> torch.Tensor:
    # The Trainer's scaling for this model: it accepts loss kwargs, so the Trainer leaves each
    # micro-batch's mean loss undivided and the window's gradient is their sum (pinned below by
    # the rho = 0 test against the plain Trainer).
    return sum(model(**b).loss for b in micro_batches)


def reference_sam(model, batches, rho: float, interval: int = 1, max_grad_norm: float = 0.0):
    """Large-batch SAM over each accumulation window, written out by hand; with ``interval`` k only
    every k-th step is a SAM step; the update gradient is clipped to ``max_grad_norm`` (0: not)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    for step, start in enumerate(range(0, len(batches), ACCUM)):
        window = batches[start : start + ACCUM]
        model.zero_grad(set_to_none=True)
        window_loss(model, window).backward()
        if step % interval != 0:
            if max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        p.sub_(LR * p.grad)
            continue
        grads = [p.grad.clone() if p.grad is not None else None for p in params]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None))
        eps = [None if g is None else rho * g / (norm.float() + 1e-12) for g in grads]
        old = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, e in zip(params, eps):
                if e is not None:
                    p.add_(e)
        model.zero_grad(set_to_none=True)
        window_loss(model, window).backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        with torch.no_grad():
            for p, o in zip(params, old):
                p.copy_(o)
                if p.grad is not None:
                    p.sub_(LR * p.grad)
    return model


@pytest.mark.slow
def test_sam_trainer_matches_two_pass_reference(tmp_path):
    init = tiny_bert()
    model = copy.deepcopy(init)
    trainer, batches = train(model, SAMTrainer, tmp_path / "sam", rho=RHO)
    assert len(batches) == STEPS * ACCUM
    assert type(trainer.optimizer).__name__ == "AcceleratedOptimizer"  # stepped through accelerate
    assert isinstance(trainer.sam, TrainerSAM)
    assert trainer.sam.steps == STEPS and trainer.sam.sam_steps == STEPS

    expected = reference_sam(copy.deepcopy(init), batches, RHO)
    for (name, p), q in zip(model.named_parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)

    # SAM's update is not plain SGD's: the same Trainer with SGD ends elsewhere.
    sgd_model = copy.deepcopy(init)
    train(sgd_model, transformers.Trainer, tmp_path / "sgd")
    gap = max((p - q).abs().max().item() for p, q in zip(model.parameters(), sgd_model.parameters()))
    assert gap > 1e-4

    # And it learns: the clean loss on the training batches went down.
    with torch.no_grad():
        before = window_loss(init.train(), batches)
        after = window_loss(model.train(), batches)
    assert after < before


@pytest.mark.slow
def test_sam_trainer_rho_zero_is_the_plain_trainer(tmp_path):
    """ρ = 0: both passes see the same weights, so SAMTrainer, the plain Trainer and the hand-written
    reference (which pins the Trainer's loss scaling) all end at the same weights."""
    init = tiny_bert()
    sam_model, sgd_model = copy.deepcopy(init), copy.deepcopy(init)
    _, batches = train(sam_model, SAMTrainer, tmp_path / "sam", rho=0.0)
    train(sgd_model, transformers.Trainer, tmp_path / "sgd")
    expected = reference_sam(copy.deepcopy(init), batches, 0.0)
    for p, q, r in zip(sam_model.parameters(), sgd_model.parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
        torch.testing.assert_close(q, r, rtol=0, atol=1e-6)


def test_trainer_sam_step_without_pending_step_explains_itself():
    model = torch.nn.Linear(2, 1)
    sam = TrainerSAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    with pytest.raises(RuntimeError, match="pending SAM step"):
        sam.step()


def test_sam_trainer_rejects_a_prebuilt_sam(tmp_path):
    model = tiny_bert()
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    with pytest.raises(ConfigError, match="base optimizer"):
        SAMTrainer(model=model, args=args, train_dataset=token_data(), optimizers=(sam, None))


@pytest.mark.slow
def test_sam_trainer_periodic_sam_with_clipping_matches_reference(tmp_path):
    """interval=2: steps 0 and 2 are SAM steps, step 1 a plain one; the Trainer clips the update gradient."""
    init = tiny_bert()
    model = copy.deepcopy(init)
    trainer, batches = train(
        model, SAMTrainer, tmp_path, max_grad_norm=0.5, rho=RHO, sam_options={"interval": 2}
    )
    assert trainer.sam.steps == STEPS and trainer.sam.sam_steps == 2
    expected = reference_sam(copy.deepcopy(init), batches, RHO, interval=2, max_grad_norm=0.5)
    for (name, p), q in zip(model.named_parameters(), expected.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_plain_trainer_cannot_step_sam(tmp_path):
    """Why SAMTrainer exists: the Trainer calls optimizer.step() without a closure."""
    model = tiny_bert()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=4,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=token_data(), optimizers=(sam, None))
    with pytest.raises(ValueError, match="needs a closure"):
        trainer.train()


def hf_args(tmp_path, **overrides):
    options = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=MICRO,
        max_steps=2,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    return transformers.TrainingArguments(**{**options, **overrides})


def test_sam_trainer_wraps_the_trainers_own_optimizer(tmp_path):
    trainer = SAMTrainer(model=tiny_bert(), args=hf_args(tmp_path), train_dataset=token_data(), rho=0.05)
    trainer.train()
    assert type(trainer.sam.base_optimizer).__name__ == "AdamW"  # args.optim's default
    assert trainer.sam.sam_steps == 2


@pytest.mark.slow
def test_sam_trainer_checkpoint_resumes_sam_state(tmp_path):
    args = hf_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    trainer = SAMTrainer(model=tiny_bert(), args=args, train_dataset=token_data(), rho=0.05)
    trainer.train()
    resumed = SAMTrainer(model=tiny_bert(), args=args, train_dataset=token_data(), rho=0.05)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    # The SAM counters come back from the checkpoint (2 steps) and two more steps follow.
    assert resumed.sam.steps == 4 and resumed.sam.sam_steps == 4
    for p, q in zip(trainer.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)

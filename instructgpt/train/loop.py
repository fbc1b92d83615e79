"""The one training loop of pretraining, SFT and the reward model.

A stage describes its work as a ``Stage`` (the model it trains, the order of its items per
epoch, the loss of a batch of item indices, how it evaluates and selects); ``train_loop`` does
the rest, the same for all three: AdamW + warmup-cosine schedule, the data-parallel shard /
share (``DistContext``) and DDP gradient sum, the non-finite stop, gradient clipping, EMA'd loss and
statistics in the logs, the progress bar, periodic evaluation, checkpoint and resume. The
shared knobs are ``TrainConfig``'s fields (``instructgpt.train.config``); each stage's config
extends it.

A resumed run lands on the same weights as an uninterrupted one: the data order is a pure
function of (seed, epoch), and the checkpoint holds optimizer, scheduler, RNG states, the step,
the EMAs and the stage's own state (SFT: the selected checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from instructgpt.config import to_dict
from instructgpt.data import epoch_permutation
from instructgpt.lora import has_adapter
from instructgpt.progress import progress
from instructgpt.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from instructgpt.train.common import (
    DistContext,
    LogFn,
    check_finite,
    distributed,
    make_optimizer,
    no_log,
    warmup_cosine,
)
from instructgpt.train.config import TrainConfig

if TYPE_CHECKING:
    from instructgpt.train.fsdp import Sharded

# a batch statistic: (this rank's mean, the number of things it is a mean over)
Stat = tuple[float, float]


class Stage:
    """What a training stage plugs into ``train_loop``. Subclasses implement ``loss`` and
    override the hooks they need; the defaults train on shuffled items without evaluation."""

    name: ClassVar[str] = "train"
    """Prefix of the quantities named in a divergence message ("sft" -> "sft/loss")."""
    desc: ClassVar[str] = ""
    """Progress bar label (default: ``name``)."""
    stats: ClassVar[tuple[str, ...]] = ()
    """Per-batch statistics besides the loss that ``loss`` returns: logged as train/<stat>,
    EMA'd into the returned train/<stat>."""
    eval_before: ClassVar[bool] = False
    """Evaluate once before the first step (the ``before`` metrics; not again on resume)."""
    eval_at_end: ClassVar[bool] = False
    """Evaluate at the last step as well (a stage that selects among evaluated checkpoints)."""
    fsdp_per_block: ClassVar[bool] = True
    """Under ``compute.parallel: fsdp``, one FSDP unit per transformer block (False: the whole
    model is one unit; ``instructgpt.train.fsdp.shard``)."""

    def __init__(self, model: nn.Module, n_items: int, seed: int, checkpoint_name: str = "model") -> None:
        self.model = model
        """The module trained (all its parameters) and checkpointed."""
        self.n_items = n_items
        """How many items one epoch covers."""
        self.seed = seed
        """Seeds the data order (``TrainConfig.seed``)."""
        self.checkpoint_name = checkpoint_name
        """File name of the module's weights in a checkpoint."""

    def order(self, epoch: int) -> list[int]:
        """Every item index once, in this epoch's order: a pure function of (seed, epoch)."""
        return epoch_permutation(self.n_items, self.seed, epoch)

    def loss(self, idx: list[int]) -> tuple[torch.Tensor, float, dict[str, Stat]]:
        """(mean loss over this rank's batch ``idx`` (never empty), the number of things it is a
        mean over (tokens, prompts), {stat: (mean, count)} for each of ``stats``)."""
        raise NotImplementedError

    def default_eval_every(self, steps_per_epoch: int) -> int:
        """Evaluation period when the config says 0 (0 = none inside the loop)."""
        return 0

    def evaluate(self, step: int) -> dict[str, float]:
        """Validation metrics, named as logged (``valid/loss``); {} = nothing to evaluate on.
        Every rank evaluates the whole validation set, so every rank selects alike."""
        return {}

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        """Called after each evaluation inside the loop (selection)."""

    def full_state(self) -> dict[str, torch.Tensor]:
        """A copy of the model's full state dict (selection keeps one). Under FSDP the loop puts
        the gathering one in its place: a collective, so every rank calls it alike."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """The stage's own state to checkpoint (tensors, numbers, dicts, None)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` gave."""


@dataclass
class LoopResult:
    """Where a ``train_loop`` ended."""

    step: int
    """Optimizer steps taken (including those before a resume)."""
    ema: dict[str, float | None]
    """EMA of the loss and of each stage statistic (None when no step ran)."""
    before: dict[str, float] = field(default_factory=dict)
    """The evaluation before the first step (``Stage.eval_before``)."""

    def train_metrics(self) -> dict[str, float]:
        """{"train/loss": EMA, "train/<stat>": EMA, ..., "steps": n}."""
        out = {f"train/{k}": float(v) if v is not None else float("nan") for k, v in self.ema.items()}
        out["steps"] = float(self.step)
        return out


class StageLoss(nn.Module):
    """``stage.loss`` as a module's forward: the unit ``DistributedDataParallel`` wraps. DDP
    hooks a module's forward, and the stages reach their model in their own ways (the RM runs
    its backbone with prefix sharing, not its ``forward``), so the loss is the forward."""

    def __init__(self, stage: Stage) -> None:
        super().__init__()
        self.model = stage.model
        """The trained module, registered so that DDP finds its parameters."""
        self.stage = stage
        """The stage whose ``loss`` runs."""

    def forward(self, idx: list[int]) -> tuple[torch.Tensor, float, dict[str, Stat]]:
        return self.stage.loss(idx)


def main_process_log(log: LogFn) -> LogFn:
    """``log`` on rank 0, a no-op on the other data-parallel ranks."""
    return log if distributed().is_main else no_log


def train_loop(cfg: TrainConfig, stage: Stage, log: LogFn = no_log) -> LoopResult:
    """Train ``stage.model`` in place for ``cfg.epochs`` (or ``cfg.max_steps``); returns the
    step and the EMAs. The model is left in eval mode.

    Data parallel under torchrun (``instructgpt.train.common.distributed``): each rank takes its
    shard of every global batch, the loss is each rank's term of the global mean, DDP sums the
    gradients during backward; only rank 0 logs, shows progress and writes checkpoints. With
    ``compute.parallel: fsdp`` (``instructgpt.device.parallelism``) a sharded copy trains instead
    and the model gets the full trained weights back at the end (``instructgpt.train.fsdp``)."""
    ctx = distributed()
    log = log if ctx.is_main else no_log
    sharded = None
    if ctx.enabled and ctx.parallel == "fsdp":
        from instructgpt.train.fsdp import shard

        sharded = shard(stage.model, ctx, stage.fsdp_per_block)
        stage.model = sharded.model  # the stage's loss and evaluation run the sharded copy
        stage.full_state = sharded.full_state_dict
        forward = lambda idx: sharded.run(lambda: stage.loss(idx))  # noqa: E731
        evaluate = lambda s: sharded.run(lambda: stage.evaluate(s))  # noqa: E731
    else:
        forward = ctx.wrap(StageLoss(stage))  # the stage's loss as one forward; DDP around it when distributed
        evaluate = stage.evaluate
    result = _train(cfg, stage, log, ctx, forward, evaluate, sharded)
    if sharded is not None:  # (not after a failure: the other ranks may not reach the gather)
        stage.model = sharded.finish()  # the plain model, holding the full trained weights
        del stage.full_state
    stage.model.eval()
    return result


def _train(cfg: TrainConfig, stage: Stage, log: LogFn, ctx: DistContext, forward: Callable,
           evaluate: Callable[[int], dict[str, float]], sharded: Sharded | None = None) -> LoopResult:
    """``train_loop``'s steps, with the model's ``forward`` and ``evaluate`` as the parallel mode wraps them."""
    model = stage.model
    steps_per_epoch = math.ceil(stage.n_items / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    eval_every = cfg.eval_every or stage.default_eval_every(steps_per_epoch)
    params = list(model.parameters())  # listed once: walking the module tree every step costs
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.warmup, total, cfg.min_lr_ratio)
    torch.manual_seed(cfg.seed + ctx.rank)  # dropout masks: each rank draws its own
    step, before = 0, {}
    ema: dict[str, float | None] = {k: None for k in ("loss", *stage.stats)}
    # checkpoints hold plain full weights: under FSDP those of the parked original (``Sharded``)
    modules = {stage.checkpoint_name: model if sharded is None else sharded.original}
    state = load_checkpoint(cfg.checkpoint_dir, modules)
    if state is not None:
        if sharded is not None:
            sharded.restore(optimizer, state["optimizer"])
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        step, ema, before = int(state["step"]), dict(state["ema"]), dict(state["before"])
        stage.load_state_dict(state["stage"])
    elif stage.eval_before:
        before = evaluate(0)
        if before:
            log(before, 0)
    model.train()
    bar = progress(total=total, initial=step, desc=stage.desc or stage.name, unit="step",
                   disable=not (cfg.show_progress and ctx.is_main))
    for epoch in range(cfg.epochs):
        if step >= total:
            break
        perm = stage.order(epoch)
        for i in range(steps_per_epoch):
            if epoch * steps_per_epoch + i < step:
                continue  # resumed: this batch was already trained on
            if step >= total:
                break
            batch = perm[i * cfg.batch_size: (i + 1) * cfg.batch_size]
            idx = ctx.shard(batch)
            optimizer.zero_grad(set_to_none=True)
            # an empty shard (last batch smaller than the world) runs one row at weight 0: DDP
            # needs every rank's backward to all-reduce the gradients
            loss, n_items, stats = forward(idx or batch[:1])
            if not idx:
                n_items, stats = 0.0, {}
            loss, _ = ctx.share(loss, n_items)  # this rank's term of the global batch's mean
            loss.backward()  # DDP: the ranks' gradients summed in buckets during the backward
            loss = ctx.all_sum(loss.detach())
            check_finite(loss, step, f"{stage.name}/loss")
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            values = {"loss": loss.item(), **{k: _global_mean(ctx, stats.get(k, (0.0, 0.0))) for k in stage.stats}}
            ema = {k: _ema(ema[k], v) for k, v in values.items()}
            if step % cfg.log_every == 0 or step == total:
                log({"train/loss": values["loss"], "train/loss_ema": ema["loss"],
                     **{f"train/{k}": values[k] for k in stage.stats},
                     "train/lr": scheduler.get_last_lr()[0],
                     "train/epoch": epoch + (i + 1) / steps_per_epoch}, step)
            if (eval_every and step % eval_every == 0) or (stage.eval_at_end and step == total):
                m = evaluate(step)
                if m:
                    log(m, step)
                stage.on_eval(step, m)
                model.train()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and (ctx.is_main or sharded is not None):
                # FSDP: every rank takes part in gathering the full weights and optimizer state
                optimizer_state = optimizer.state_dict() if sharded is None else sharded.gather(optimizer)
                if ctx.is_main:
                    save_checkpoint(cfg.checkpoint_dir, modules, {
                        "optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rng_state(),
                        "step": step, "ema": ema, "before": before, "stage": stage.state_dict()}, to_dict(cfg))
    bar.close()
    return LoopResult(step, ema, before)


SELECTION_KEYS = {"valid_loss": ("valid/loss", -1.0), "valid_accuracy": ("valid/accuracy", 1.0)}
"""selection name -> (the evaluated metric, +1 if higher is better, -1 if lower is); "last" keeps the last."""


def keep_best(best: dict | None, metrics: dict[str, float], step: int, model: nn.Module, selection: str,
              full_state: Callable[[], dict[str, torch.Tensor]]) -> dict:
    """The evaluated checkpoint to keep after this evaluation: ``best`` or this step's
    (``{"step", "metrics", "state"}``), by ``selection`` (a key of ``SELECTION_KEYS`` or "last";
    a tie keeps the earlier). Without the metric (no validation data) the last one is kept. With
    a LoRA adapter only the trainable tensors are copied: the frozen base weights cannot differ."""
    key, sign = SELECTION_KEYS.get(selection, (None, 0.0))
    if key is not None and key not in metrics:
        key = None  # nothing to select on
    better = best is None or key is None or sign * (metrics[key] - best["metrics"][key]) > 0
    if not better:
        return best
    if has_adapter(model):
        state = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}
    else:
        state = full_state()  # a copy of the state dict (gathered from the shards under FSDP)
    return {"step": step, "metrics": dict(metrics), "state": state}


def _ema(old: float | None, new: float) -> float:
    """Exponential moving average with weight 0.9 on the past (the first value starts it)."""
    return new if old is None else 0.9 * old + 0.1 * new


def _global_mean(ctx: DistContext, stat: Stat) -> float:
    """A statistic over the global batch: this rank's mean alone in one process (bit-identical
    to the stage's own number), Σ mean·count / Σ count over the ranks otherwise."""
    mean, count = stat
    if not ctx.enabled:
        return float(mean)
    return float(ctx.all_sum(mean * count) / ctx.all_sum(count))

"""THE training loop: every run goes through `train`, queued or foreground or scikit-learn.

setup: seed, data, model, optimizer, schedule, precision, (resume from a checkpoint)
for epoch in start+1 .. epochs:
    train:  for each batch of a (seed, epoch)-shuffled order (this rank's piece of it):
                zero_grad → forward (autocast) → loss → backward → grad norm → clip
                → step → per-step schedule → every log_every_steps: sync, NaN check, log
                → stop check (cancel / interrupt, agreed by all ranks) after every step
    eval:   validation loss and accuracy under inference_mode (sums over all ranks)
    report: epoch metrics (weights and gradients too, every HISTOGRAM_EVERY epochs) → sinks;
            per-epoch / plateau schedule
    keep:   checkpoint state → the checkpoint writer; early stopping
Every exit returns an Outcome saying why: completed, early_stopped, cancelled, interrupted,
diverged.
On several devices the same loop runs in every rank's process through `distributed.Ranks`
(DDP wrap, sharded batches, reduced sums); only rank 0 reports and keeps checkpoints.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

from trainboard.training.checkpoint import CheckpointManager, load_checkpoint
from trainboard.training.data import RawData
from trainboard.training.diagnosis import diagnose
from trainboard.training.distributed import ONE_DEVICE, Ranks
from trainboard.training.exits import Exit, Outcome
from trainboard.training.layer_norms import LayerNorms
from trainboard.training.optim import build_schedule
from trainboard.training.probe import Probe
from trainboard.training.progress import Progress, evaluate
from trainboard.training.runtime import capture_rng, epoch_order, restore_rng
from trainboard.training.setup import build_setup
from trainboard.training.sinks import (
    CheckpointFiles,
    CheckpointWriter,
    EpochReport,
    MemorySink,
    Sink,
)
from trainboard.training.spec import RunSpec

StopCheck = Callable[[], Exit | None]
HISTOGRAM_EVERY = 10  # epochs between weight and gradient samples (the first epoch too)


def train(
    spec: RunSpec,
    *,
    run_dir: Path,
    sink: Sink | None = None,
    should_stop: StopCheck = lambda: None,
    resume_from: Path | None = None,
    uploads_dir: Path | None = None,
    device: str | None = None,
    raw_data: RawData | None = None,
    checkpoints: CheckpointWriter | None = None,
    max_parameters: int | None = None,
    probe: Probe | None = None,
    ranks: Ranks = ONE_DEVICE,
) -> Outcome:
    """Train `spec` to the end (or to a stop), reporting through `sink`; returns why it ended.
    Checkpoints go to `checkpoints`, by default files under `run_dir/checkpoints` written here.
    `raw_data` replaces the spec's data set (the scikit-learn estimators pass their arrays).
    A diverged run's summary has a `diagnosis`, found by replaying the attempt up to the first
    bad step with a `probe` watching that step (the replay stops there). `ranks`: this
    process's place among the run's devices (see `distributed`); every rank calls `train`."""
    sink = sink or MemorySink()
    checkpoints = checkpoints or CheckpointFiles(
        CheckpointManager(run_dir / "checkpoints", spec.checkpoint), sink
    )
    # --- setup
    setup = build_setup(
        spec,
        uploads_dir=uploads_dir,
        raw_data=raw_data,
        device=device,
        max_parameters=max_parameters,
        rank=ranks.rank if ranks.world > 1 else None,
    )
    dev, data, model, loss_fn = setup.device, setup.data, setup.model, setup.loss_fn
    optimizer, precision, classify = setup.optimizer, setup.precision, setup.classify
    x_train, y_train, x_val, y_val = setup.x_train, setup.y_train, setup.x_val, setup.y_val
    n_train, batch = len(x_train), spec.batch_size
    if spec.overfit_batches:
        n_train = min(n_train, spec.overfit_batches * batch)
    starts = setup.batch_starts(n_train, batch, ranks.world)
    schedule = build_schedule(
        optimizer, spec.scheduler, epochs=spec.epochs, steps_per_epoch=len(starts)
    )
    # With fp16 the scaler skips steps on non-finite gradients and lowers its scale: not a NaN.
    check_grads = not precision.scaler.is_enabled()
    progress = Progress(spec)
    params = [p for p in model.parameters() if p.requires_grad]
    layers = LayerNorms(model)
    replay = None
    # How a divergence is replayed to find where it began: on one device only (a replay on
    # one device of a run on several would not retrace its arithmetic).
    if probe is None and ranks.world == 1:
        replay = functools.partial(
            train,
            spec,
            run_dir=run_dir,
            resume_from=resume_from,
            uploads_dir=uploads_dir,
            device=device,
            raw_data=raw_data,
            max_parameters=max_parameters,
        )

    def diverged() -> Outcome:
        if ranks.rank != 0:  # rank 0 diagnoses and reports
            return _finish(sink, progress, Exit.diverged)
        progress.diagnosis = diagnose(
            progress,
            model,
            optimizer,
            setup,
            replay=replay,
            should_stop=should_stop,
            checkpoints=run_dir / "checkpoints",
        )
        return _finish(sink, progress, Exit.diverged)

    # What every checkpoint repeats, made once.
    kept_as_is = {
        "spec": spec.model_dump(mode="json"),
        "data_info": data.info.to_dict(),
        "preprocessing": data.preprocessing,
    }
    start_epoch = 0
    if resume_from is not None:
        state = load_checkpoint(resume_from, map_location=dev)
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer_state_dict"])
        schedule.load_state_dict(state["scheduler_state_dict"])
        if state.get("scaler_state_dict"):
            precision.scaler.load_state_dict(state["scaler_state_dict"])
        progress.load_state_dict(state["progress"])
        rank_rngs = state.get("rank_rngs")
        mine = len(rank_rngs or []) == ranks.world and ranks.world > 1
        restore_rng(rank_rngs[ranks.rank] if mine else state["rng"])
        start_epoch = state["epoch"]
    elif ranks.rank > 0:  # each rank draws its own dropout masks
        torch.manual_seed(spec.seed * 1_000_003 + ranks.rank)
    net = ranks.wrap(model)  # after resuming: DDP starts every rank from rank 0's weights

    for epoch in range(start_epoch + 1, spec.epochs + 1):
        # --- train
        model.train()
        started = time.perf_counter()
        order = (
            torch.arange(n_train, device=dev)
            if spec.overfit_batches
            else epoch_order(n_train, spec.seed, epoch, dev)
        )
        # Running sums stay on the device: reading them (.item()) would sync every step.
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        window: list[tuple[torch.Tensor, torch.Tensor]] = []
        grad_norms: list[float] = []
        for start in starts:
            idx = order[start : start + batch]
            mine = ranks.shard(idx)
            xb, yb = x_train[mine], y_train[mine]
            if probe is not None and progress.global_step + 1 == probe.step:
                probe.attach(model, xb, yb, data.info)
            optimizer.zero_grad(set_to_none=True)
            with precision.autocast():
                out = net(xb)
                loss = loss_fn(out, yb)
            # The scaler scales fp16 losses and unscales before clipping; otherwise a no-op.
            # On several devices: this rank's share of the global batch's mean loss.
            weighed = ranks.weigh(loss, len(mine), len(idx))
            precision.scaler.scale(weighed).backward()
            precision.scaler.unscale_(optimizer)
            grad_norm = get_total_norm([p.grad for p in params if p.grad is not None])
            logging = (progress.global_step + 1) % spec.log_every_steps == 0
            layer_norms = layers.measure() if logging else None  # before clipping
            if spec.grad_clip_norm is not None:
                clip_grads_with_norm_(params, spec.grad_clip_norm, grad_norm)
            precision.scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
            precision.scaler.update()
            progress.global_step += 1
            if probe is not None and probe.attached:
                probe.detach(model, loss)
                return _finish(sink, progress, Exit.cancelled)
            loss_sum += loss.detach().float() * len(mine)
            if classify:
                correct += (out.argmax(dim=1) == yb).sum()
            window.append((weighed.detach().float(), grad_norm.detach().float()))
            # --- log: one host sync per log_every_steps steps, where the NaN check happens too
            if logging:
                losses, norms = progress.sync_window(window, check_grads=check_grads, ranks=ranks)
                grad_norms += norms
                window = []
                if progress.diverged:
                    return diverged()
                sink.log_step(
                    progress.global_step,
                    {
                        "step/train_loss": sum(losses) / len(losses),
                        "step/grad_norm": norms[-1],
                        "step/lr": optimizer.param_groups[0]["lr"],  # the lr this step used
                        **layers.as_metrics(layer_norms),
                    },
                )
            schedule.step_after_batch()
            stop = ranks.agree(should_stop())
            if stop is not None:
                return _finish(sink, progress, stop)
        losses, norms = progress.sync_window(window, check_grads=check_grads, ranks=ranks)
        grad_norms += norms
        if progress.diverged:
            return diverged()
        lr = optimizer.param_groups[0]["lr"]

        # --- eval
        seen = min(n_train, starts[-1] + batch)  # samples trained on this epoch
        ranks.sum_(loss_sum, correct)
        metrics = {
            "train_loss": loss_sum.item() / seen,
            "grad_norm": sum(grad_norms) / len(grad_norms),
        }
        if classify:
            metrics["train_accuracy"] = correct.item() / seen
        metrics |= evaluate(model, loss_fn, x_val, y_val, precision, classify, batch, ranks)
        if not math.isfinite(metrics["val_loss"]) or not math.isfinite(metrics["train_loss"]):
            progress.mark_diverged(epoch=epoch, what="the epoch's loss")
            return diverged()
        seconds = time.perf_counter() - started
        metrics |= {"lr": lr, "epoch_seconds": seconds, "samples_per_second": seen / seconds}

        # --- report
        schedule.step_after_epoch(metrics["val_loss"])
        progress.end_epoch(epoch, metrics)
        report = EpochReport(
            epoch, spec.epochs, metrics, progress.eta_seconds(epoch), progress.summary()
        )
        if ranks.rank == 0 and (epoch == 1 or epoch % HISTOGRAM_EVERY == 0):
            report.weights, report.grads = sampled_tensors(model)
        sink.log_epoch(report)

        # --- keep: checkpoint after the metrics are logged, so a crash in between re-runs the
        # epoch (its points are replaced) instead of skipping its metrics forever.
        stopped = Exit.early_stopped if progress.should_stop_early(spec.early_stopping) else None
        stopping = ranks.agree(stopped) is Exit.early_stopped
        every = spec.checkpoint.every_epochs
        keep = (every and epoch % every == 0) or epoch == spec.epochs or stopping
        rngs = ranks.gather(capture_rng()) if keep else []  # every rank's, for an exact resume
        if keep and ranks.rank == 0:
            state = {
                "epoch": epoch,
                "model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict(),
                "loss": metrics["train_loss"],
                "scheduler_state_dict": schedule.state_dict(),
                "scaler_state_dict": precision.scaler.state_dict(),
                "metrics": metrics,
                "progress": progress.state_dict(),
                **kept_as_is,
                "rng": rngs[0],
                **({"rank_rngs": rngs} if ranks.world > 1 else {}),
            }
            checkpoints.save(state, epoch=epoch, metrics=metrics)
        if stopping:
            return _finish(sink, progress, Exit.early_stopped)
        stop = ranks.agree(should_stop())
        if stop is not None and epoch < spec.epochs:
            return _finish(sink, progress, stop)
    return _finish(sink, progress, Exit.completed)


def sampled_tensors(
    model: torch.nn.Module,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The weights and the last step's gradients by name, detached, as float on the CPU (for
    CPU parameters these are views: a sink reads or copies them before the next step)."""
    weights, grads = {}, {}
    for name, param in model.named_parameters():
        weights[name] = param.detach().float().cpu()
        if param.grad is not None:
            grads[name] = param.grad.detach().float().cpu()
    return weights, grads


def _finish(sink: Sink, progress: Progress, exit: Exit) -> Outcome:
    outcome = Outcome(exit, progress.epoch, progress.message(exit), progress.summary())
    sink.close(outcome)
    return outcome

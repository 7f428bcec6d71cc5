"""A job: one attempt at a run, as a worker hands it to the process that trains it, and
`run_job`, the one function that trains an attempt to its end, in a worker's child process or
in `trainboard train` alike."""

from __future__ import annotations

import functools
import json
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainboard.training.exits import End, Failure, RecordingLost

if TYPE_CHECKING:  # the loop's modules load torch: a Job is read before they are needed
    from trainboard.training.loop import StopCheck
    from trainboard.training.sinks import CheckpointWriter, Sink


@dataclass(frozen=True)
class Job:
    """Everything the training process needs and nothing it must look up: the stored spec (as
    JSON), the run's folder, the checkpoint it resumes from and the epoch it starts after."""

    run_id: int
    attempt: int
    device: str
    spec: dict[str, Any]
    run_dir: Path
    uploads_dir: Path
    resume_from: Path | None = None
    start_epoch: int = 0
    max_parameters: int | None = None
    torch_threads: int = 0  # 0: the process chooses (see child.torch_threads)
    kind: str = "job"  # or a check of the spec: "lr_find", "preflight" (training/checks.py)
    options: dict[str, Any] | None = None  # the check's settings

    @property
    def devices(self) -> int:
        """How many processes train it, one per device (the spec's `devices`)."""
        return int(self.spec.get("devices", 1))

    @property
    def on_cuda(self) -> bool:
        """Whether it trains on GPUs: the spec's device, or on `auto` the worker's."""
        asked = self.spec.get("device", "auto")
        return str(self.device if asked == "auto" else asked).startswith("cuda")

    @property
    def log_path(self) -> Path:
        return self.run_dir / "run.log"

    def describe(self) -> str:
        resuming = f", resuming from {self.resume_from.name}" if self.resume_from else ""
        what = "run" if self.kind == "job" else f"{self.kind} run"
        several = self.kind == "job" and self.devices > 1  # a check runs in one process
        on = f"{self.devices} {self.device} devices" if several else self.device
        return f"{what} {self.run_id} attempt {self.attempt} on {on}{resuming}"

    def to_line(self) -> bytes:
        """One line of JSON: how the job crosses to the child's stdin."""
        return (json.dumps(asdict(self), default=str) + "\n").encode()

    @classmethod
    def from_line(cls, line: str | bytes) -> Job:
        fields = json.loads(line)
        for name in ("run_dir", "uploads_dir", "resume_from"):
            fields[name] = Path(fields[name]) if fields[name] is not None else None
        return cls(**fields)


def training_of(
    job: Job, spec: Any, *, sink: Sink, checkpoints: CheckpointWriter
) -> functools.partial[Any]:
    """The loop bound to `job` (its spec, folders, resume point and device): call it, with
    `should_stop` or `ranks` where needed, to train the attempt."""
    from trainboard.training.loop import train

    return functools.partial(
        train,
        spec,
        run_dir=job.run_dir,
        sink=sink,
        checkpoints=checkpoints,
        resume_from=job.resume_from,
        uploads_dir=job.uploads_dir,
        max_parameters=job.max_parameters,
        device=job.device,
    )


def run_job(job: Job, *, sink: Sink, checkpoints: CheckpointWriter, should_stop: StopCheck) -> End:
    """Train `job` with a progress bar on stdout (or run its check), reporting through `sink`,
    and return how it ended. Either the loop (or this, after a check) closes `sink` with its
    Outcome, or this closes it with the Failure of whatever raised (the traceback goes to
    stderr, the run's log in a child). RecordingLost propagates: nothing more may be recorded
    for this attempt."""
    from trainboard.training.checks import run_check
    from trainboard.training.sinks import ConsoleSink, FanOut
    from trainboard.training.spec import RunSpec

    closing: Sink = sink
    try:
        spec = RunSpec.model_validate(job.spec)  # checked by the recording side that made the job
        if job.kind != "job":
            outcome = run_check(
                job.kind,
                spec,
                job.options or {},
                sink=sink,
                should_stop=should_stop,
                uploads_dir=job.uploads_dir,
                device=job.device,
                max_parameters=job.max_parameters,
            )
            print(outcome.message, flush=True)
            sink.close(outcome)
            return outcome
        closing = FanOut(sink, ConsoleSink(spec.epochs, job.start_epoch, stream=sys.stdout))
        attempt = training_of(job, spec, sink=closing, checkpoints=checkpoints)
        attempt = functools.partial(attempt, should_stop=should_stop)
        if job.devices == 1:  # (a check of the spec runs above, in one process)
            return attempt()
        from trainboard.worker.ranks import process_group

        with process_group(job.to_line(), job.devices, cuda=job.on_cuda) as ranks:  # as rank 0
            return attempt(ranks=ranks)
    except RecordingLost:
        raise
    except Exception as exc:
        traceback.print_exc()
        failure = Failure.from_exception(exc)
        try:
            closing.close(failure)
        except RecordingLost:
            raise
        except Exception:  # the sink's own failure (a full disk, say) is what ended the run
            traceback.print_exc()
        return failure

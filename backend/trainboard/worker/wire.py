"""A child's messages (see `channel.ChannelSink`) as plain values and tensors, the form in
which a remote worker sends them: `torch.save` writes it and `torch.load(weights_only=True)`
reads it back, so the server unpickles nothing."""

from __future__ import annotations

from typing import Any

from trainboard.training.exits import End, Exit, Failure, Outcome
from trainboard.training.sinks import EpochReport


def end_to_wire(end: End) -> dict[str, Any]:
    """An attempt's end as plain values."""
    if isinstance(end, Failure):
        return {"kind": "failure", "message": end.message, "retry": end.retry}
    return {
        "kind": "outcome",
        "exit": end.exit.value,
        "epoch": end.epoch,
        "message": end.message,
        "summary": end.summary,
    }


def end_from_wire(data: dict[str, Any]) -> End:
    """`end_to_wire`'s inverse; ValueError for anything else."""
    if data.get("kind") == "failure":
        return Failure(str(data["message"]), retry=bool(data.get("retry", False)))
    if data.get("kind") == "outcome":
        return Outcome(
            Exit(data["exit"]), int(data["epoch"]), str(data["message"]), dict(data["summary"])
        )
    raise ValueError("an end is an outcome or a failure")


def message_to_wire(message: tuple[Any, ...]) -> list[Any]:
    """A child's channel message (see `channel.ChannelSink`) as plain values and tensors."""
    kind, *body = message
    if kind == "epoch":
        report: EpochReport = body[0]
        return [kind, {**report.__dict__}]
    if kind == "end":
        return [kind, end_to_wire(body[0])]
    return [kind, *body]


def message_from_wire(message: list[Any]) -> tuple[Any, ...]:
    """`message_to_wire`'s inverse, checking the shape of what a worker sent."""
    kind, *body = message
    if kind == "step" and len(body) == 2:
        return ("step", int(body[0]), {str(k): float(v) for k, v in dict(body[1]).items()})
    if kind == "epoch" and len(body) == 1:
        return ("epoch", EpochReport(**dict(body[0])))
    if kind == "end" and len(body) == 1:
        return ("end", end_from_wire(dict(body[0])))
    raise ValueError(f"unknown report {kind!r}")

"""Reading an exported file back as its format's own runtime does (onnxruntime,
torch.jit.load, torch.export.load) and checking it against the eager model."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch

from trainboard.serving.export import ExportProblem, Format, cause

TOLERANCE = 1e-4


def load_exported(fmt: Format, path: Path) -> Any:
    """A callable from tensor to tensor running the exported file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load is deprecated in favour of export
        if fmt == "onnx":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            name = session.get_inputs()[0].name
            return lambda x: torch.as_tensor(session.run(None, {name: x.numpy()})[0])
        if fmt == "torchscript":
            return torch.jit.load(str(path), map_location="cpu")
        return torch.export.load(path).module()


def run_exported(runner: Any, x: torch.Tensor) -> torch.Tensor:
    """An exported file's outputs (through `load_exported`'s runner) for the batch `x`."""
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return runner(x).float()


def max_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """The largest difference, relative where values exceed 1 (regression targets can be
    large: float32 alone cannot hold 1e-4 absolute there)."""
    if not got.numel():
        return 0.0
    difference = (got - expected).abs() / torch.clamp(expected.abs(), min=1.0)
    both_nan = torch.isnan(got) & torch.isnan(expected)
    difference = torch.nan_to_num(difference, nan=math.inf, posinf=math.inf)
    return float(torch.where(both_nan, 0.0, difference).max())


def verify(fmt: Format, path: Path, x: torch.Tensor, expected: torch.Tensor) -> float:
    """Check the export on the batch `x` and on its first row alone (the batch dimension must
    be dynamic); returns the largest difference, ExportProblem beyond TOLERANCE."""
    try:
        runner = load_exported(fmt, path)
    except Exception as exc:
        raise ExportProblem(f"the {fmt} export does not load: {cause(exc)}") from None
    worst = 0.0
    for batch, want in ((x, expected), (x[:1], expected[:1])):
        try:
            got = run_exported(runner, batch)
        except Exception as exc:
            raise ExportProblem(
                f"the {fmt} export does not run on a batch of {len(batch)}: {cause(exc)}"
            ) from None
        if got.shape != want.shape:
            raise ExportProblem(
                f"the {fmt} export gives outputs of shape {list(got.shape)} for a batch of "
                f"{len(batch)}; the model gives {list(want.shape)}"
            )
        worst = max(worst, max_difference(got, want))
    if worst > TOLERANCE:
        raise ExportProblem(
            f"the {fmt} export differs from the model by {worst:.3g} on its validation rows "
            f"(at most {TOLERANCE:g} is allowed)"
        )
    return worst

"""Writing a Servable as ONNX (torch.onnx, dynamo), TorchScript (script, else trace) or
torch.export's `.pt2`, with a dynamic batch dimension and the model's description inside."""

from __future__ import annotations

import errno
import io
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

Format = Literal["onnx", "torchscript", "pt2"]
SUFFIXES: dict[str, str] = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}
METADATA_KEY = "trainboard"
EXTRA_FILE = "trainboard.json"
MAX_BATCH = 1_000_000


class ExportProblem(ValueError):
    """The model cannot be exported in this format, or its export does not match it."""


def cause(exc: BaseException) -> str:
    """The innermost error's type and first line: what a person can act on."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else '(no message)'}"


def _hint(exc: BaseException) -> str:
    text = cause(exc)
    if "data-dependent" in text or "DataDependent" in text:
        return " (the model's forward branches on its inputs' values, which one graph cannot)"
    return ""


def _batch_dim() -> Any:
    # min=1: a batch of one row is served too; the example batch has 2+ rows so that
    # tracing does not specialize the dimension to 0 or 1.
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def _onnx(module: nn.Module, example: torch.Tensor, path: Path, metadata: str) -> None:
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        dynamic_shapes=({0: _batch_dim()},),
        input_names=["input"],
        output_names=["output"],
        verbose=False,
    )
    assert program is not None
    program.model.metadata_props[METADATA_KEY] = metadata
    program.save(path, external_data=False)


def _pt2(module: nn.Module, example: torch.Tensor, path: Path, metadata: str) -> None:
    program = torch.export.export(module, (example,), dynamic_shapes=({0: _batch_dim()},))
    # Through a buffer: saved to a path, the archive's folder would be named after our
    # temporary file.
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={EXTRA_FILE: metadata})
    path.write_bytes(buffer.getvalue())


def _torchscript(module: nn.Module, example: torch.Tensor, path: Path, metadata: str) -> None:
    try:
        # Scripting keeps control flow, so it is exact where tracing would freeze a branch.
        scripted: Any = torch.jit.script(module)
    except Exception as exc:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            scripted = torch.jit.trace(module, example, check_trace=False)
        frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning)]
        if frozen:
            raise ExportProblem(
                f"torch.jit.script failed ({cause(exc)}) and tracing would freeze what the "
                f"model computes from its inputs' values: {str(frozen[0].message)[:300]}"
            ) from None
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={EXTRA_FILE: metadata})
    path.write_bytes(buffer.getvalue())


EXPORTERS: dict[str, Callable[[nn.Module, torch.Tensor, Path, str], None]] = {
    "onnx": _onnx,
    "torchscript": _torchscript,
    "pt2": _pt2,
}


def export_module(
    fmt: Format, module: nn.Module, example: torch.Tensor, path: Path, info: dict[str, Any]
) -> None:
    """Write `module` (eval mode) to `path` in `fmt`; ExportProblem naming why it cannot be."""
    metadata = json.dumps(info)
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    # The exporters warn at length (deprecations, skipped torchvision ops): none of it is the
    # caller's to act on, and the test suite treats warnings as errors.
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            EXPORTERS[fmt](module, example, path, metadata)
    except ExportProblem:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is the server's problem (507), not the model's
        raise ExportProblem(f"{fmt} export failed: {cause(exc)}") from None
    except Exception as exc:
        raise ExportProblem(f"{fmt} export failed: {cause(exc)}{_hint(exc)}") from None
    finally:
        onnx_log.setLevel(level)

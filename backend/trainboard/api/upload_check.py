"""Uploaded checkpoints are checked before anything is stored: they must load as weights."""

from __future__ import annotations

import io

from fastapi import HTTPException


def require_weights_only(content: bytes) -> None:
    """422 unless `content` loads with `torch.load(..., weights_only=True)`: a pickle of
    arbitrary objects would run code in whoever loads it (the server, a download's user)."""
    import torch

    try:
        torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise HTTPException(
            422,
            "the checkpoint does not load with torch.load(..., weights_only=True), so it was "
            f"not stored ({reason}). Save tensors and plain containers, e.g. "
            "{'model_state_dict': model.state_dict(), 'epoch': epoch}, not pickled objects",
        ) from None

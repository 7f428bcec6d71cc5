"""Uploaded checkpoints are checked before anything is stored: they must load as weights."""

from __future__ import annotations

import io
import zipfile

from fastapi import HTTPException


def require_weights_only(content: bytes, *, max_unpacked: int) -> None:
    """422 unless `content` loads with `torch.load(..., weights_only=True)`: a pickle of
    arbitrary objects would run code in whoever loads it (the server, a download's user).
    A zip checkpoint (torch.save's format) must also unpack to at most `max_unpacked` bytes:
    its entries may be deflated, and 100 KB can inflate to gigabytes in the server's memory.
    A legacy (non-zip) checkpoint is never compressed, so loading it costs its size at most."""
    if zipfile.is_zipfile(io.BytesIO(content)):
        require_small_torch_zip(content, max_unpacked=max_unpacked)
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


def require_small_torch_zip(content: bytes, *, max_unpacked: int) -> None:
    """422 unless `content` is a torch.save zip (one folder holding data.pkl) whose entries,
    as its central directory states them, unpack to at most `max_unpacked` bytes. torch's
    reader takes the stated sizes, so an entry cannot inflate past them."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise HTTPException(422, f"the checkpoint is a damaged zip file ({exc})") from None
    if not any(info.filename.endswith("/data.pkl") for info in infos):
        raise HTTPException(422, "the checkpoint is a zip file but not one torch.save wrote")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > max_unpacked:
        raise HTTPException(
            422,
            f"the checkpoint unpacks to {unpacked:,} bytes, over the {max_unpacked:,} allowed "
            "(4 times TRAINBOARD_MAX_UPLOAD_BYTES), so it was not stored",
        )

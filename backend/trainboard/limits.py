"""Request size limits: 413 for bodies over the limit, announced by Content-Length or streamed.
JSON bodies and file uploads (multipart, and a remote worker's report batches) have separate
limits, and a remote worker's checkpoint upload has its own."""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CHECKPOINT_UPLOAD = re.compile(r"^/api/remote/runs/\d+/attempts/\d+/checkpoints/\d+$")


def is_checkpoint_upload(scope: Scope) -> bool:
    """Whether the request is a remote worker's checkpoint upload (a file of any size that
    may take long to arrive)."""
    return scope["method"] == "PUT" and CHECKPOINT_UPLOAD.match(scope["path"]) is not None


class TooLarge(HTTPException):
    """Raised from `receive`: FastAPI passes an HTTPException from body reading on as it is
    (any other exception there becomes a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_json_bytes: int, max_upload_bytes: int, max_file_bytes: int
    ) -> None:
        self.app, self.max_json, self.max_upload = app, max_json_bytes, max_upload_bytes
        self.max_file = max_file_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        kind = headers.get(b"content-type", b"")
        limit = (
            self.max_file
            if is_checkpoint_upload(scope)
            else self.max_upload
            if kind.startswith((b"multipart/", b"application/octet-stream"))
            else self.max_json
        )
        too_large = JSONResponse({"detail": f"request body larger than {limit} bytes"}, 413)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await too_large(scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(limit)
            return message

        try:
            await self.app(scope, limited, send)
        except TooLarge:
            await too_large(scope, receive, send)

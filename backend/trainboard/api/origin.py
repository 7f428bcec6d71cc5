"""SameOriginWrites: refuse writes that a page on another site could make a browser send.

A browser lets any page send a "simple" request anywhere (a form's content type or no body, no
CORS preflight first): without a token, a page the user visits could cancel runs, upload data
sets or overwrite checkpoints. So a write (POST, PUT, PATCH, DELETE) must come from our own
page or an origin in `cors_origins`, and a body must be JSON or octet-stream (a remote worker's
files), which a page on another origin can only send after a preflight, or multipart, which the
Origin check covers. Scripts, curl and our
Python client send neither Origin nor Sec-Fetch-Site, so only the content type applies to them.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
BODY_TYPES = frozenset({"application/json", "multipart/form-data", "application/octet-stream"})
# "none": the user's own doing (address bar, bookmark), not a page's.
TRUSTED_SITES = frozenset({"same-origin", "none"})


class SameOriginWrites:
    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = {origin.rstrip("/").lower() for origin in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in WRITE_METHODS:
            refusal = self.refusal(scope["method"], Headers(scope=scope))
            if refusal is not None:
                return await refusal(scope, receive, send)
        await self.app(scope, receive, send)

    def refusal(self, method: str, headers: Headers) -> Response | None:
        """The response that refuses this write, or None to let it through."""
        origin = headers.get("origin")
        if not self.listed(origin):
            # A browser's own word on where the request comes from, which no page can forge;
            # behind a proxy that rewrites Host it is also the only reliable one. Browsers
            # without it are judged by Origin against Host.
            site = headers.get("sec-fetch-site")
            if site is not None and site.lower() not in TRUSTED_SITES:
                return _refuse(403, f"a page on another site ({site}) may not change anything here")
            if (
                site is None
                and origin is not None
                and not same_host(origin, headers.get("host", ""))
            ):
                return _refuse(
                    403,
                    f"a page on {origin} may not change anything here "
                    "(list it in TRAINBOARD_CORS_ORIGINS to allow it)",
                )
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if method in BODY_METHODS and media_type not in BODY_TYPES:
            return _refuse(
                415,
                "send Content-Type: application/json (with an empty body too), "
                "or multipart/form-data for a file upload",
            )
        return None

    def listed(self, origin: str | None) -> bool:
        return origin is not None and ("*" in self.allowed or origin.lower() in self.allowed)


def same_host(origin: str, host: str) -> bool:
    """Whether `origin` names the host and port the request was sent to. The scheme is left out:
    behind a TLS proxy the server sees http while its page is on https."""
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def _refuse(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status)

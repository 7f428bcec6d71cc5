"""Fixtures of the end-to-end tests: an HTTP client for the module's `site` server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Server


@pytest.fixture
def api(site: Server) -> Iterator[httpx.Client]:
    """A client of the `site` server that the test's module defines."""
    with httpx.Client(base_url=site.url, timeout=30) as client:
        yield client

"""Fuzz the API from its own OpenAPI schema, on SQLite and PostgreSQL: no generated input may
cause a 5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.helpers import Server, tiny_spec

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25


def test_no_generated_request_causes_a_server_error(home: Path, database_url: str) -> None:
    server = Server(home, database_url).start()
    try:
        with httpx.Client(base_url=server.url) as http:
            # Something for generated ids to hit: a queued run, a finished external run.
            http.post("/api/runs", json=tiny_spec())
            external = http.post("/api/runs", json={"kind": "external", "name": "fuzzed"}).json()[
                "id"
            ]
            http.post(
                f"/api/runs/{external}/metrics",
                json={"points": [{"key": "loss", "step": 1, "value": 1.0}]},
            )
            http.post(f"/api/runs/{external}/finish", json={"status": "completed"})
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        tested = []
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.path.endswith("/events"):
                continue  # a running run's stream never ends by design; it has its own tests
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES_PER_OPERATION,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                def fuzz(case: schemathesis.Case) -> None:
                    case.call_and_validate(base_url=server.url, checks=[not_a_server_error])

                try:
                    fuzz()
                except Unsatisfiable:
                    # No invalid input exists for an operation that takes none (GET /api/health).
                    assert mode is GenerationMode.NEGATIVE, operation.label
            tested.append(operation.label)
        assert len(tested) >= 15, tested
        assert "unhandled error" not in server.log()
    finally:
        server.stop()

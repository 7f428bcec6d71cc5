"""Metric reads and live events at their edges, on a real server (SQLite and PostgreSQL):
point counts, exact values, non-finite values end to end, repeated and unknown keys."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Server

pytestmark = pytest.mark.slow


@pytest.fixture
def http(shared_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        yield client


def external_run(http: httpx.Client, points: list[dict[str, object]]) -> int:
    run_id = http.post("/api/runs", json={"kind": "external"}).json()["id"]
    assert http.post(f"/api/runs/{run_id}/metrics", json={"points": points}).status_code == 202
    return run_id


def test_a_series_of_fewer_points_than_asked_comes_back_whole(http: httpx.Client) -> None:
    steps = [*range(1, 101), 10**9]  # one step far away: a long x-range, few points
    run_id = external_run(http, [{"key": "loss", "step": s, "value": 1.0 / s} for s in steps])
    series = http.get(f"/api/runs/{run_id}/metrics", params={"max_points": 2000}).json()
    assert series["series"]["loss"]["steps"] == steps
    assert series["series"]["loss"]["values"] == [1.0 / s for s in steps]


def test_values_and_timestamps_come_back_exactly(http: httpx.Client) -> None:
    points = [
        {"key": "x", "step": 1, "value": 0.1 + 0.2, "timestamp": 1_732_893_456.123456},
        {"key": "x", "step": 2, "value": 1e-300, "timestamp": 1_732_893_457.000001},
        {"key": "x", "step": 3, "value": -2.5e300, "timestamp": 1_732_893_458.5},
    ]
    run_id = external_run(http, points)
    series = http.get(f"/api/runs/{run_id}/metrics").json()["series"]["x"]
    assert series["values"] == [p["value"] for p in points]
    assert series["timestamps"] == [p["timestamp"] for p in points]
    assert all(isinstance(step, int) for step in series["steps"])


def test_non_finite_values_are_null_in_reads_and_live_events(
    http: httpx.Client, shared_server: Server
) -> None:
    values = [1.0, float("inf"), float("-inf"), float("nan"), 2.0]
    # Python's json writes NaN and ±Infinity as bare tokens; the API accepts what it sends.
    body = json.dumps(
        {"points": [{"key": "loss", "step": i + 1, "value": v} for i, v in enumerate(values)]}
    )
    run_id = http.post("/api/runs", json={"kind": "external"}).json()["id"]
    written = http.post(
        f"/api/runs/{run_id}/metrics", content=body, headers={"Content-Type": "application/json"}
    )
    assert written.status_code == 202
    expected = [1.0, None, None, None, 2.0]
    assert http.get(f"/api/runs/{run_id}/metrics").json()["series"]["loss"]["values"] == expected
    seen: list[float | None] = []
    with httpx.stream("GET", f"{shared_server.url}/api/runs/{run_id}/events", timeout=30) as r:
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data:") and '"points"' in line:
                seen += [p["value"] for p in json.loads(line[5:])["points"]]
                if len(seen) == len(values):
                    # The stream lives on: a later point and the end still arrive.
                    late = {"points": [{"key": "loss", "step": 6, "value": 3.0}]}
                    http.post(f"/api/runs/{run_id}/metrics", json=late)
                elif len(seen) == len(values) + 1:
                    http.post(f"/api/runs/{run_id}/finish", json={"status": "completed"})
            if line.startswith("data:") and '"status": "completed"' in line:
                break
    assert seen == [*expected, 3.0]


def test_repeated_keys_are_read_once_and_bad_keys_refused(http: httpx.Client) -> None:
    run_id = external_run(http, [{"key": "loss", "step": 1, "value": 0.5}])
    many = http.get(f"/api/runs/{run_id}/metrics", params={"keys": ",".join(["loss"] * 800)})
    assert many.status_code == 200 and list(many.json()["series"]) == ["loss"]
    distinct = ",".join(f"k{i}" for i in range(201))
    refused = http.get(f"/api/runs/{run_id}/metrics", params={"keys": distinct})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "keys"]
    assert "at most 200" in refused.json()["detail"][0]["msg"]
    bad = http.get(f"/api/runs/{run_id}/metrics", params={"keys": "loss,a\x00b"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "keys"]

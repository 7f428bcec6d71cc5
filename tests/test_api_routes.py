"""The routes' logic in process, through `TestClient(create_app(settings))` on a temporary
SQLite: the run life cycle's rules, external runs, 404s and the token. What needs a real server
(streams, bursts, uploads, workers) is in tests/e2e."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from trainboard.app import create_app
from trainboard.config import Settings

from tests.helpers import tiny_spec


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("routes-home")
    with TestClient(create_app(Settings(home=home))) as client:
        yield client


def test_a_queued_run_is_listed_edited_cancelled_resumed_and_deleted(client: TestClient) -> None:
    made = client.post("/api/runs", json=tiny_spec(name="life", tags=["a"]))
    assert made.status_code == 201
    run = made.json()
    assert (run["status"], run["name"], run["tags"]) == ("queued", "life", ["a"])
    rid = run["id"]
    listed = client.get("/api/runs", params={"tag": "a"}).json()
    assert [r["id"] for r in listed["items"]] == [rid] and listed["total"] == 1
    assert client.delete(f"/api/runs/{rid}").status_code == 409  # queued: not yet
    edited = client.patch(f"/api/runs/{rid}", json={"notes": "<b>kept as text</b>"}).json()
    assert edited["notes"] == "<b>kept as text</b>"
    cancelled = client.post(f"/api/runs/{rid}/cancel", json={})
    assert (cancelled.status_code, cancelled.json()["status"]) == (202, "cancelled")
    assert client.post(f"/api/runs/{rid}/cancel", json={}).status_code == 409
    resumed = client.post(f"/api/runs/{rid}/resume", json={})
    assert (resumed.status_code, resumed.json()["status"]) == (202, "queued")
    client.post(f"/api/runs/{rid}/cancel", json={})
    assert client.delete(f"/api/runs/{rid}").status_code == 204
    missing = client.get(f"/api/runs/{rid}")
    assert missing.status_code == 404 and str(rid) in missing.json()["detail"]


def test_an_external_run_records_points_until_it_is_finished(client: TestClient) -> None:
    rid = client.post("/api/runs", json={"kind": "external", "name": "mine"}).json()["id"]
    points = [{"key": "loss", "step": s, "value": 1 / s} for s in (1, 2, 3)]
    assert client.post(f"/api/runs/{rid}/metrics", json={"points": points}).status_code < 300
    series = client.get(f"/api/runs/{rid}/metrics", params={"keys": "loss"}).json()["series"]
    assert series["loss"]["steps"] == [1, 2, 3]
    assert series["loss"]["values"] == pytest.approx([1, 0.5, 1 / 3])
    finished = client.post(f"/api/runs/{rid}/finish", json={"status": "completed"})
    assert finished.status_code == 200 and finished.json()["status"] == "completed"
    late = client.post(f"/api/runs/{rid}/metrics", json={"points": points})
    assert late.status_code == 409 and "finished" in late.json()["detail"]


def test_a_bad_spec_names_its_field_and_stores_nothing(client: TestClient) -> None:
    before = client.get("/api/runs").json()["total"]
    response = client.post("/api/runs", json=tiny_spec(epochs=0))
    assert response.status_code == 422
    assert any(error["loc"][-1] == "epochs" for error in response.json()["detail"])
    assert client.get("/api/runs").json()["total"] == before


def test_with_a_token_every_api_route_asks_for_it(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, token="s3cret")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = client.get("/api/runs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["total"] == 0


def test_a_runs_size_is_the_recorded_one_not_a_walk_of_its_folder(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("size-home")
    with TestClient(create_app(Settings(home=home))) as client:
        rid = client.post("/api/runs", json={"kind": "external", "name": "sized"}).json()["id"]
        buffer = io.BytesIO()
        torch.save({"w": torch.zeros(300)}, buffer)  # uploads must load as weights
        content = buffer.getvalue()
        uploaded = client.post(
            f"/api/runs/{rid}/checkpoints",
            files={"file": ("c.pt", content)},
            data={"epoch": "1"},
        )
        assert uploaded.status_code == 201, uploaded.text
        assert client.get(f"/api/runs/{rid}").json()["disk_bytes"] == len(content)
        # A file trainboard did not write is not counted until trainboard writes again.
        (home / "runs" / str(rid) / "stray.bin").write_bytes(b"y" * 100)
        listed = client.get("/api/runs").json()["items"]
        assert [r["disk_bytes"] for r in listed if r["id"] == rid] == [len(content)]


def test_a_new_runs_size_is_recorded_from_the_start_and_grows_with_its_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("new-size-home")
    with TestClient(create_app(Settings(home=home))) as client:
        rid = client.post("/api/runs", json={"kind": "external", "name": "new"}).json()["id"]
        # Nothing written by trainboard yet: the listing does not look at the disk.
        (home / "runs" / str(rid)).mkdir(parents=True)
        (home / "runs" / str(rid) / "stray.bin").write_bytes(b"y" * 100)
        listed = client.get("/api/runs").json()["items"]
        assert [r["disk_bytes"] for r in listed if r["id"] == rid] == [0]
        line = "époque 1: loss 0.5\n"  # counted in bytes, not characters
        assert client.post(f"/api/runs/{rid}/log", json={"text": line}).status_code == 202
        assert client.post(f"/api/runs/{rid}/log", json={"text": line}).status_code == 202
        assert client.get(f"/api/runs/{rid}").json()["disk_bytes"] == 2 * len(line.encode())

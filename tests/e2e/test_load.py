"""The server under load, on SQLite and PostgreSQL: a burst of concurrent mixed requests, and
large reads beside a running job. Every request is answered, none with a 5xx, nothing lost."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from trainboard.db import init_db, make_engine, session_scope
from trainboard.schemas import ExternalRunCreate
from trainboard.store.metrics import add_metrics
from trainboard.store.runs import create_external_run

from tests.conftest import DATABASES, fresh_database
from tests.helpers import Server, run_async, tiny_spec, wait_until

pytestmark = pytest.mark.slow

BURST = 128
# Each request must be answered within this; a server that froze (locks, pool) would not be.
ANSWER_SECONDS = 30.0
LARGE_POINTS = 300_000
# A one-point write beside large reads: a liveness bound, far above the latency bench/store.py
# measures, and far below what a read holding the write lock made a write wait.
WRITE_SECONDS = 2.0


@pytest.fixture(scope="module", params=DATABASES)
def loaded_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, int]]:
    """A real server with one embedded worker, and an external run of LARGE_POINTS points."""
    home = tmp_path_factory.mktemp("load-home")
    with fresh_database(request.param, home, request) as url:
        engine = make_engine(url)
        init_db(engine)
        with session_scope(engine) as session:
            run = create_external_run(session, request=ExternalRunCreate(kind="external"))
        for start in range(0, LARGE_POINTS, 50_000):
            with session_scope(engine) as session:
                points = [
                    ("step/train_loss", i, math.cos(i / 1000), None)
                    for i in range(start, start + 50_000)
                ]
                add_metrics(session, run_id=run.id, points=points)
        engine.dispose()
        server = Server(Path(home), url, workers=1).start()
        yield server, int(run.id)
        server.stop()


async def _stream_opens(client: httpx.AsyncClient, run_id: int) -> int:
    """Open a run's live events, read up to its first event, close: the status code."""
    async with client.stream("GET", f"/api/runs/{run_id}/events") as response:
        if response.status_code == 200:
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    break
        return response.status_code


async def _burst(url: str, run_id: int) -> dict[str, list[int]]:
    """BURST requests at once: health, lists, one-point writes, run creation, live streams."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_SECONDS, limits=limits) as client:
        kinds: list[tuple[str, object]] = []
        for i in range(BURST):
            match i % 6:
                case 0:
                    call = client.get("/api/health")
                    kinds.append(("health", call))
                case 1:
                    kinds.append(("list", client.get("/api/runs", params={"limit": 20})))
                case 2 | 3:
                    point = {"key": "burst", "step": i, "value": float(i)}
                    call = client.post(f"/api/runs/{run_id}/metrics", json={"points": [point]})
                    kinds.append(("write", call))
                case 4:
                    body = {"kind": "external", "name": f"burst-{i}"}
                    kinds.append(("create", client.post("/api/runs", json=body)))
                case 5:
                    kinds.append(("stream", _stream_opens(client, run_id)))
        results = await asyncio.gather(*(call for _, call in kinds))  # type: ignore[misc]
    codes: dict[str, list[int]] = {}
    for (kind, _), result in zip(kinds, results, strict=True):
        codes.setdefault(kind, []).append(result if isinstance(result, int) else result.status_code)
    return codes


def test_a_burst_of_mixed_requests_is_answered_whole(loaded_server: tuple[Server, int]) -> None:
    server, _large = loaded_server
    run_id = httpx.post(
        f"{server.url}/api/runs", json={"kind": "external", "name": "burst-target"}
    ).json()["id"]
    codes = run_async(_burst(server.url, run_id))
    assert set(codes["health"]) == {200} and set(codes["list"]) == {200}
    assert set(codes["write"]) == {202} and set(codes["create"]) == {201}
    assert set(codes["stream"]) == {200}
    # Every point that was accepted is stored.
    series = httpx.get(f"{server.url}/api/runs/{run_id}/metrics", params={"keys": "burst"}).json()
    written = sorted(i for i in range(BURST) if i % 6 in (2, 3))
    assert series["series"]["burst"]["steps"] == written
    names = {r["name"] for r in httpx.get(f"{server.url}/api/runs?limit=500").json()["items"]}
    assert {f"burst-{i}" for i in range(BURST) if i % 6 == 4} <= names


async def _large_reads_and_writes(url: str, large: int, target: int) -> tuple[list[int], list[int]]:
    """8 reads of the whole large series at once, and one-point writes, one after another, for
    as long as the reads last: each write must be answered within WRITE_SECONDS."""
    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_SECONDS * 4) as client:
        reads = asyncio.gather(
            *(
                client.get(f"/api/runs/{large}/metrics", params={"max_points": 1_000_000})
                for _ in range(8)
            )
        )
        writes: list[int] = []
        while not reads.done():
            point = {"points": [{"key": "beside", "step": len(writes), "value": 1.0}]}
            response = await client.post(
                f"/api/runs/{target}/metrics", json=point, timeout=WRITE_SECONDS
            )
            writes.append(response.status_code)
        done = await reads
    for response in done:
        assert len(response.json()["series"]["step/train_loss"]["steps"]) == LARGE_POINTS
    return [r.status_code for r in done], writes


def test_large_reads_hold_up_neither_writes_nor_a_running_job(
    loaded_server: tuple[Server, int],
) -> None:
    server, large = loaded_server
    http = httpx.Client(base_url=server.url, timeout=ANSWER_SECONDS)
    job = http.post("/api/runs", json=tiny_spec(epochs=150, name="beside-reads")).json()["id"]
    target = http.post("/api/runs", json={"kind": "external"}).json()["id"]
    wait_until(
        lambda: http.get(f"/api/runs/{job}").json()["status"] == "running",
        timeout=60,
        what="the job to start",
    )
    reads, writes = run_async(_large_reads_and_writes(server.url, large, target))
    assert reads == [200] * 8
    assert len(writes) > 1 and set(writes) == {202}
    final = wait_until(
        lambda: (
            (r := http.get(f"/api/runs/{job}").json())["status"] not in ("queued", "running") and r
        ),
        timeout=120,
        what="the job to finish",
    )
    assert final["status"] == "completed", final["error"]
    http.close()


# A liveness bound for /api/health beside open streams or a large upload: far above what it
# takes (bench/store.py), far below the stall of one database poll per stream, or of a CSV
# parsed on the event loop (seconds).
HEALTH_SECONDS = 1.0


async def _health_beside_streams(url: str, run_id: int, count: int) -> list[dict[str, int]]:
    """Open `count` live-event streams of a run, then ask /api/health 20 times."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_SECONDS, limits=limits) as client:
        opened = [asyncio.Event() for _ in range(count)]
        done = asyncio.Event()

        async def hold(ready: asyncio.Event) -> None:
            async with client.stream("GET", f"/api/runs/{run_id}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        ready.set()
                    if done.is_set():
                        return

        streams = [asyncio.ensure_future(hold(ready)) for ready in opened]
        await asyncio.wait_for(asyncio.gather(*(ready.wait() for ready in opened)), 60)
        answers = []
        for _ in range(20):
            response = await client.get("/api/health", timeout=HEALTH_SECONDS)
            answers.append(response.json())
        done.set()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return answers


def test_health_answers_beside_200_open_streams(loaded_server: tuple[Server, int]) -> None:
    server, _large = loaded_server
    run_id = httpx.post(f"{server.url}/api/runs", json={"kind": "external"}).json()["id"]
    answers = run_async(_health_beside_streams(server.url, run_id, 200))
    assert all(a["status"] == "ok" for a in answers)
    assert {a["streams"] for a in answers} == {200}


def test_a_large_csv_upload_does_not_stall_other_requests(
    loaded_server: tuple[Server, int],
) -> None:
    server, _large = loaded_server
    rows = b"".join(b"%d,%d.5,%d,%d\n" % (i, i % 97, i % 13, i % 2) for i in range(700_000))
    csv = b"a,b,c,label\n" + rows  # about 14 MB
    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        result["upload"] = httpx.post(
            f"{server.url}/api/datasets",
            files={"file": ("big.csv", csv, "text/csv")},
            data={"target": "label", "name": "big-upload"},
            timeout=120,
        )

    uploading = threading.Thread(target=upload)
    uploading.start()
    answered = 0
    while uploading.is_alive():
        assert httpx.get(f"{server.url}/api/health", timeout=HEALTH_SECONDS).status_code == 200
        answered += 1
    uploading.join()
    assert result["upload"].status_code == 201, result["upload"].text
    assert answered > 1


async def _writes_to_two_runs(url: str, open_run: int, finished: int) -> list[httpx.Response]:
    """32 one-point writes at once, alternating between the two runs."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_SECONDS, limits=limits) as client:
        calls = [
            client.post(
                f"/api/runs/{finished if i % 2 else open_run}/metrics",
                json={"points": [{"key": "mixed", "step": i, "value": float(i)}]},
            )
            for i in range(32)
        ]
        return await asyncio.gather(*calls)


def test_writes_that_commit_together_are_refused_only_for_their_own_run(
    loaded_server: tuple[Server, int],
) -> None:
    """Writes arriving together commit in one transaction; a finished run in the same burst
    refuses its own points (409) and nothing else."""
    server, _large = loaded_server
    open_run, finished = (
        httpx.post(f"{server.url}/api/runs", json={"kind": "external"}).json()["id"]
        for _ in range(2)
    )
    done = httpx.post(f"{server.url}/api/runs/{finished}/finish", json={"status": "completed"})
    assert done.status_code == 200, done.text
    answers = run_async(_writes_to_two_runs(server.url, open_run, finished))
    assert [a.status_code for a in answers[0::2]] == [202] * 16
    assert [a.status_code for a in answers[1::2]] == [409] * 16
    assert all("has finished" in a.json()["detail"] for a in answers[1::2])
    stored = httpx.get(f"{server.url}/api/runs/{open_run}/metrics", params={"keys": "mixed"})
    assert stored.json()["series"]["mixed"]["steps"] == list(range(0, 32, 2))
    nothing = httpx.get(f"{server.url}/api/runs/{finished}/metrics", params={"keys": "mixed"})
    assert nothing.json()["series"].get("mixed", {"steps": []})["steps"] == []

"""Metric store speed against plain sqlite3 floors, all in one run on the same machine.

(a) write floor: plain sqlite3 executemany, WAL, same table and indexes, batches of 1,000
(b) the store API writing 1,000,000 points in batches of 1,000
(c) POST /api/runs/{id}/metrics through a real uvicorn server, batches of 1,000
(d) GET .../metrics of a 1,000,000-point series with max_points=2000, and a 10,000-point one whole
(e) latency from a metric's commit to its arrival at a live-events (SSE) client
(f) read floor: plain sqlite3 fetching the same 1,000,000 raw points
(g) under load: p99 of a one-point write alone (the baseline), inside 10 bursts of 128 mixed
    requests sent at once on kept-alive connections (every fourth a write, the others health
    checks and run lists), and beside 8 concurrent whole reads of the 1,000,000-point series;
    p99 of /api/health alone and with 200 live-event streams open
Prints `name: value unit` lines.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
from trainboard.db import init_db, make_engine, session_scope  # noqa: E402
from trainboard.schemas import ExternalRunCreate  # noqa: E402
from trainboard.store.metrics import add_metrics  # noqa: E402
from trainboard.store.runs import create_external_run  # noqa: E402

from tests.helpers import Server  # noqa: E402

N, BATCH = 1_000_000, 1_000


def rows(run_id: int, n: int) -> list[tuple]:
    now = time.time()
    return [(run_id, "step/train_loss", i, 1.0 / (i + 1), now, i + 1) for i in range(n)]


def write_floor(path: Path) -> float:
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)  # the same schema and indexes
    with session_scope(engine) as session:
        run_id = create_external_run(
            session, request=ExternalRunCreate(kind="external", name="floor")
        ).id
    engine.dispose()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    data = rows(run_id, N)
    start = time.perf_counter()
    for i in range(0, N, BATCH):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            "INSERT INTO metric_point (run_id, key, step, value, timestamp, seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            data[i : i + BATCH],
        )
        connection.execute("COMMIT")
    seconds = time.perf_counter() - start
    connection.close()
    return N / seconds


def read_floor(path: Path) -> float:
    connection = sqlite3.connect(path)
    start = time.perf_counter()
    fetched = connection.execute(
        "SELECT step, value, timestamp FROM metric_point "
        "WHERE run_id = 1 AND key = 'step/train_loss' ORDER BY step"
    ).fetchall()
    seconds = time.perf_counter() - start
    assert len(fetched) == N
    connection.close()
    return seconds


def store_writes(path: Path) -> tuple[float, int]:
    engine = make_engine(f"sqlite:///{path}")
    init_db(engine)
    with session_scope(engine) as session:
        run_id = create_external_run(
            session, request=ExternalRunCreate(kind="external", name="store")
        ).id
    points = [("step/train_loss", i, 1.0 / (i + 1), None) for i in range(N)]
    start = time.perf_counter()
    for i in range(0, N, BATCH):
        with session_scope(engine) as session:
            add_metrics(session, run_id=run_id, points=points[i : i + BATCH])
    seconds = time.perf_counter() - start
    engine.dispose()
    return N / seconds, run_id


def p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


FAILURES: list[str] = []  # 5xx answers and requests that got none, in (g)


class KeptAlive:
    """One kept-alive HTTP/1.1 connection that sends pre-encoded requests and reads their
    answers, as wrk does. The latency figures of (g) are taken with it: a full client's own
    work (aiohttp's ~80 ms of CPU per burst of 128, its request bodies sent only after every
    other request's headers) ran on the same two cores as the server and showed up in the
    server's figure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> KeptAlive:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def encode(self, method: str, path: str, body: Any = None) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
        if body is None:
            return f"{head}\r\n".encode()
        data = json.dumps(body).encode()
        length = f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        return (head + length).encode() + data

    async def timed(self, request: bytes) -> float:
        """Seconds from sending `request` to having its whole answer."""
        assert self.reader is not None and self.writer is not None
        start = time.perf_counter()
        try:
            async with asyncio.timeout(30):
                self.writer.write(request)
                head = await self.reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                sizes = [int(h[15:]) for h in lines if h.lower().startswith(b"content-length:")]
                if not sizes:  # every answer timed here has a length; anything else is a fault
                    raise ValueError(f"an answer without a length: {lines[0]!r}")
                await self.reader.readexactly(sizes[0])
            if int(lines[0].split()[1]) >= 500:
                FAILURES.append(lines[0].decode())
        except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
            FAILURES.append(type(exc).__name__)
            self.close()  # out of step with the server: start again on a new connection
            await self.open()
        return time.perf_counter() - start


async def load_figures(url: str, big: int) -> dict[str, float]:
    """(g): seconds at the 99th percentile, each beside its unloaded baseline. Writes and
    health checks go through KeptAlive connections; the large reads and the live-event streams,
    whose own timing is not a figure, through aiohttp."""
    host, port = url.removeprefix("http://").split(":")
    connector = aiohttp.TCPConnector(limit=0)  # a connection per request in flight
    # Per read and connect, not per request: the streams stay open for the whole figure.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=30)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:
        async with client.post("/api/runs", json={"kind": "external"}) as response:
            target = (await response.json())["id"]
        step = iter(range(10**9))

        async def connect() -> KeptAlive:
            # Opened for each figure: the server closes a connection idle for 5 s.
            return await KeptAlive(host, int(port)).open()

        def write(via: KeptAlive) -> bytes:
            point = {"key": "w", "step": next(step), "value": 1.0}
            return via.encode("POST", f"/api/runs/{target}/metrics", {"points": [point]})

        one = await connect()
        alone = [await one.timed(write(one)) for _ in range(200)]
        health = one.encode("GET", "/api/health")
        health_alone = [await one.timed(health) for _ in range(200)]

        one.close()
        connections = [await connect() for _ in range(128)]
        in_burst: list[float] = []
        for burst in range(11):  # the first warms the server's connections: not counted
            # Every fourth request a write, spread through the burst: 32 writes, 32 health
            # checks, 64 run lists.
            requests = [
                write(c) if i % 4 == 0 else health if i % 4 == 1 else c.encode("GET", "/api/runs")
                for i, c in enumerate(connections)
            ]
            answered = await asyncio.gather(
                *(c.timed(r) for c, r in zip(connections, requests, strict=True))
            )
            if burst:
                in_burst += answered[::4]

        async def read_big() -> None:
            params = {"max_points": N}
            try:
                async with client.get(f"/api/runs/{big}/metrics", params=params) as response:
                    await response.read()
                    if response.status >= 500:
                        FAILURES.append(str(response.status))
            except (aiohttp.ClientError, TimeoutError) as exc:
                FAILURES.append(type(exc).__name__)

        for connection in connections:
            connection.close()
        one = await connect()
        reads = asyncio.gather(*(read_big() for _ in range(8)))
        beside_reads = []
        while not reads.done():
            beside_reads.append(await one.timed(write(one)))
        await reads

        async def hold_stream(opened: asyncio.Event, done: asyncio.Event) -> None:
            async with client.get(f"/api/runs/{target}/events") as stream:
                opened.set()
                async for _ in stream.content:
                    if done.is_set():
                        return

        done = asyncio.Event()
        opened = [asyncio.Event() for _ in range(200)]
        streams = [asyncio.ensure_future(hold_stream(o, done)) for o in opened]
        try:
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 60)
        except TimeoutError:
            FAILURES.append("streams did not open")
        one.close()
        one = await connect()
        with_streams = [await one.timed(health) for _ in range(200)]
        one.close()
        done.set()
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return {
        "write_alone": p99(alone),
        "write_in_burst_128": p99(in_burst),
        "write_beside_8_large_reads": p99(beside_reads),
        "health_alone": p99(health_alone),
        "health_with_200_streams": p99(with_streams),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        floor = write_floor(home / "floor.db")
        read_floor_s = read_floor(home / "floor.db")
        store_rate, _ = store_writes(home / "trainboard.db")
        print(f"write_floor_sqlite3: {floor:,.0f} points/s")
        print(f"store_api_write: {store_rate:,.0f} points/s")
        print(f"store_api_write_vs_floor: {store_rate / floor:.2f} x")
        print(f"read_floor_sqlite3_1M: {read_floor_s * 1000:.0f} ms")

        server = Server(home, f"sqlite:///{home / 'trainboard.db'}").start()
        try:
            http = httpx.Client(base_url=server.url, timeout=60)
            big = 1  # the store benchmark's run: 1M points of step/train_loss
            small = http.post("/api/runs", json={"kind": "external", "name": "rest"}).json()["id"]
            body = [
                {"key": "step/train_loss", "step": i, "value": 1.0 / (i + 1)} for i in range(BATCH)
            ]
            rest_points = 200_000
            start = time.perf_counter()
            for offset in range(0, rest_points, BATCH):
                batch = [dict(p, step=p["step"] + offset) for p in body]
                response = http.post(
                    f"/api/runs/{small}/metrics",
                    content=json.dumps({"points": batch}),
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 202
            rest_rate = rest_points / (time.perf_counter() - start)
            print(f"rest_write: {rest_rate:,.0f} points/s")
            print(f"rest_write_vs_floor: {rest_rate / floor:.2f} x")

            def read(run_id: int, **params: int) -> tuple[float, int]:
                """Median seconds of five reads of step/train_loss, and the points returned."""
                timings = []
                for _ in range(5):
                    start = time.perf_counter()
                    response = http.get(
                        f"/api/runs/{run_id}/metrics", params={"keys": "step/train_loss", **params}
                    )
                    timings.append(time.perf_counter() - start)
                points = len(response.json()["series"]["step/train_loss"]["steps"])
                return statistics.median(timings), points

            downsampled, points = read(big, max_points=2000)
            assert 0 < points <= 2000
            print(f"read_1M_downsampled_2000: {downsampled * 1000:.0f} ms")
            print(f"read_floor_over_downsampled: {read_floor_s / downsampled:.2f} x")
            whole, points = read(small, max_points=20_000, x_max=9_999)
            assert points == 10_000
            print(f"read_10k_whole: {whole * 1000:.0f} ms")

            live = http.post("/api/runs", json={"kind": "external", "name": "sse"}).json()["id"]
            committed: dict[int, float] = {}
            arrived: dict[int, float] = {}
            ready = threading.Event()

            def listen() -> None:
                with httpx.stream(
                    "GET", f"{server.url}/api/runs/{live}/events", timeout=60
                ) as stream:
                    for line in stream.iter_lines():
                        ready.set()
                        if line.startswith("data: ") and '"points"' in line:
                            for point in json.loads(line[6:])["points"]:
                                arrived.setdefault(point["step"], time.perf_counter())
                        if len(arrived) >= 100:
                            return

            listener = threading.Thread(target=listen)
            listener.start()
            ready.wait(10)
            for step in range(100):
                http.post(
                    f"/api/runs/{live}/metrics",
                    json={"points": [{"key": "loss", "step": step, "value": 1.0}]},
                )
                committed[step] = time.perf_counter()  # the 202 comes after the commit
                time.sleep(0.02)
            listener.join(30)
            latencies = sorted(
                max(0.0, arrived[s] - committed[s]) for s in committed if s in arrived
            )
            p50 = latencies[len(latencies) // 2]
            p95 = latencies[int(len(latencies) * 0.95) - 1]
            print(f"sse_delivery_p50: {p50 * 1000:.0f} ms")
            print(f"sse_delivery_p95: {p95 * 1000:.0f} ms")
            print(f"sse_points_delivered: {len(latencies)} of 100")

            figures = asyncio.run(load_figures(server.url, big))
            for name, seconds in figures.items():
                print(f"{name}_p99: {seconds * 1000:.1f} ms")
            print(f"load_failures: {len(FAILURES)} requests")
            for name, baseline in (("write", "write_alone"), ("health", "health_alone")):
                for loaded in [k for k in figures if k.startswith(name) and k != baseline]:
                    ratio = figures[loaded] / figures[baseline]
                    print(f"{loaded}_p99_vs_alone: {ratio:.1f} x")
        finally:
            server.stop()


if __name__ == "__main__":
    main()

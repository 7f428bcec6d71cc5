"""The HTTP edge of a real server: cross-site writes, tokens in URLs, oversized and slow requests,
what /static serves, what `trainboard runs` prints, and embedded workers outliving `serve`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from trainboard.cli import terminal_safe
from trainboard.config import default_frontend_dir

from tests.helpers import Server, free_port, process_env, tiny_spec, wait_until

pytestmark = pytest.mark.slow

MAX_BODY = 4096
MAX_UPLOAD = 8192
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
LISTED_ORIGIN = "http://allowed.example"
TOKEN = "s3cret-token"
CSV = b"a,b,label\n" + b"".join(f"{i},{i % 7},{i % 2}\n".encode() for i in range(60))


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tokenless server with small limits and short deadlines."""
    home = tmp_path_factory.mktemp("edge-home")
    server = Server(
        home,
        f"sqlite:///{home / 'trainboard.db'}",
        env_extra={
            "TRAINBOARD_MAX_BODY_BYTES": str(MAX_BODY),
            "TRAINBOARD_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            "TRAINBOARD_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
            "TRAINBOARD_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "TRAINBOARD_CORS_ORIGINS": f'["{LISTED_ORIGIN}"]',
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
def http(edge: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def other_site() -> Iterator[str]:
    """A page on another origin (localhost vs the server's 127.0.0.1, another port)."""

    class Blank(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><title>elsewhere</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Blank)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def queued_run(http: httpx.Client) -> int:
    response = http.post("/api/runs", json=tiny_spec())  # no workers: it stays queued
    assert response.status_code == 201, response.text
    return response.json()["id"]


def external_run(http: httpx.Client, name: str = "ext") -> int:
    response = http.post("/api/runs", json={"kind": "external", "name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def dataset_names(http: httpx.Client) -> set[str]:
    return {d["name"] for d in http.get("/api/catalog").json()["datasets"]}


# Cross-site request forgery on a tokenless server


@pytest.mark.browser
def test_a_page_on_another_site_cannot_cancel_upload_or_overwrite(
    page: Any, edge: Server, http: httpx.Client, other_site: str
) -> None:
    queued, external = queued_run(http), external_run(http)
    page.goto(f"{other_site}/")
    # Simple requests: no preflight, so before the check they reached the handlers.
    sent = page.evaluate(
        """async ([server, queued, external, csv]) => {
          const post = (path, body) =>
            fetch(server + path, {method: "POST", mode: "no-cors", body});
          const upload = (fields) => {
            const form = new FormData();
            for (const [k, v] of Object.entries(fields)) form.append(k, v);
            return form;
          };
          await post(`/api/runs/${queued}/cancel`);
          await post(`/api/runs/${queued}/cancel`, new URLSearchParams({x: "1"}));
          await post("/api/datasets", upload({
            file: new File([csv], "stolen.csv"), target: "label", name: "stolen"}));
          await post(`/api/runs/${external}/checkpoints`, upload({
            file: new File(["not a model"], "x.pt"), epoch: "1"}));
          return true;
        }""",
        [edge.url, queued, external, CSV.decode()],
    )
    assert sent
    assert http.get(f"/api/runs/{queued}").json()["status"] == "queued"
    assert "stolen" not in dataset_names(http)
    assert http.get(f"/api/runs/{external}/checkpoints").json() == []


@pytest.mark.browser
def test_the_page_itself_still_cancels_a_run(page: Any, edge: Server, http: httpx.Client) -> None:
    rid = queued_run(http)
    page.goto(f"{edge.url}/#/runs")  # its modules have run by the load event
    status = page.evaluate(
        "async (rid) => (await (await import('/static/api.js')).api.cancel(rid)).status", rid
    )
    assert status == "cancelled"
    assert http.get(f"/api/runs/{rid}").json()["status"] == "cancelled"
    assert page.js_errors == []


def test_writes_need_a_json_or_multipart_body_and_a_trusted_origin(
    edge: Server, http: httpx.Client
) -> None:
    rid = queued_run(http)
    cancel = f"/api/runs/{rid}/cancel"
    for headers in ({}, {"Content-Type": "text/plain"}):
        refused = http.post(cancel, headers=headers)
        assert refused.status_code == 415
        assert "Content-Type: application/json" in refused.json()["detail"]
    form = http.post(cancel, data={"x": "1"})  # application/x-www-form-urlencoded
    assert form.status_code == 415
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{edge.port}"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        refused = http.post(cancel, json={}, headers=headers)
        assert refused.status_code == 403, headers
        assert isinstance(refused.json()["detail"], str)
    evil = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert http.delete(f"/api/runs/{rid}", headers=evil).status_code == 403
    assert http.patch(f"/api/runs/{rid}", json={"notes": "x"}, headers=evil).status_code == 403
    upload = http.post(
        "/api/datasets",
        files={"file": ("evil.csv", CSV)},
        data={"target": "label", "name": "evil"},
        headers=evil,
    )
    assert upload.status_code == 403 and "evil" not in dataset_names(http)
    assert http.get(f"/api/runs/{rid}").json()["status"] == "queued"

    # Our own page, an origin listed in TRAINBOARD_CORS_ORIGINS, and non-browser clients pass.
    own = {"Origin": edge.url, "Sec-Fetch-Site": "same-origin"}
    assert http.post(cancel, json={}, headers=own).json()["status"] == "cancelled"
    # ... also behind a proxy that sends the server its own address as Host.
    proxied = {"Origin": "https://trainboard.example.org", "Sec-Fetch-Site": "same-origin"}
    behind = http.post(f"/api/runs/{queued_run(http)}/cancel", json={}, headers=proxied)
    assert behind.status_code == 202
    listed = http.post(
        f"/api/runs/{queued_run(http)}/cancel",
        json={},
        headers={"Origin": LISTED_ORIGIN, "Sec-Fetch-Site": "cross-site"},
    )
    assert listed.status_code == 202
    assert listed.headers["access-control-allow-origin"] == LISTED_ORIGIN
    assert http.post(f"/api/runs/{queued_run(http)}/cancel", json={}).status_code == 202
    made = http.post("/api/datasets", files={"file": ("mine.csv", CSV)}, data={"target": "label"})
    assert made.status_code == 201, made.text


# The token in the query string


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("locked-home")
    server = Server(
        home, f"sqlite:///{home / 'trainboard.db'}", env_extra={"TRAINBOARD_TOKEN": TOKEN}
    ).start()
    yield server
    server.stop()


def test_the_query_token_opens_reads_but_not_writes(locked: Server) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    query = {"token": TOKEN}
    with httpx.Client(base_url=locked.url, timeout=30) as http:
        rid = http.post("/api/runs", json=tiny_spec(), headers=bearer).json()["id"]
        assert http.get("/api/runs", params=query).status_code == 200
        assert http.get(f"/api/runs/{rid}/logs", params=query).status_code == 200
        assert http.post("/api/runs", json=tiny_spec(), params=query).status_code == 401
        cancel = f"/api/runs/{rid}/cancel"
        assert http.post(cancel, json={}, params=query).status_code == 401
        assert http.patch(f"/api/runs/{rid}", json={"notes": "x"}, params=query).status_code == 401
        assert http.delete(f"/api/runs/{rid}", params=query).status_code == 401
        assert http.get(f"/api/runs/{rid}", headers=bearer).json()["status"] == "queued"
        assert http.post(cancel, json={}, headers=bearer).status_code == 202


# Oversized chunked bodies


def chunks(parts: list[bytes]) -> Iterator[bytes]:
    yield from parts  # a generator: httpx sends it chunked, with no Content-Length


def test_a_streamed_json_body_over_the_limit_gets_413(http: httpx.Client) -> None:
    rid = external_run(http)
    point = b'{"key": "k", "step": 1, "value": 1.0},'
    body = [b'{"points": [', *[point] * (2 * MAX_BODY // len(point)), b"]}"]
    response = http.post(
        f"/api/runs/{rid}/metrics",
        content=chunks(body),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == f"request body larger than {MAX_BODY} bytes"


def test_a_streamed_upload_over_the_limit_gets_413(http: httpx.Client) -> None:
    boundary = "edgeboundary"
    body = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nlabel\r\n'.encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; "
        f'name="file"; filename="big.csv"\r\n\r\na,label\n'.encode(),
        *[b"1,0\n" * 2048] * 20,  # 160 KiB: the limit with its framing allowance is 72 KiB
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    response = http.post(
        "/api/datasets",
        content=chunks(body),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    assert "big" not in dataset_names(http)


# Slow clients


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes `sock` (reading whatever it answers on the way)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_half_a_request_line_is_closed_after_the_header_timeout(
    edge: Server, http: httpx.Client
) -> None:
    slow = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", edge.port))
        sock.sendall(b"GET /api/hea")
        slow.append(sock)
    silent = socket.create_connection(("127.0.0.1", edge.port))
    try:
        assert http.get("/api/health").status_code == 200  # while they hang on
        for sock in [*slow, silent]:
            assert closed_within(sock, HEADER_TIMEOUT + 10) < HEADER_TIMEOUT + 10
        assert http.get("/api/health").status_code == 200
    finally:
        for sock in [*slow, silent]:
            sock.close()


def test_a_body_that_stops_coming_gets_408_and_a_closed_connection(edge: Server) -> None:
    with socket.create_connection(("127.0.0.1", edge.port)) as sock:
        sock.sendall(
            f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        start, answer = time.monotonic(), b""
        sock.settimeout(BODY_TIMEOUT + 10)
        while chunk := sock.recv(4096):
            answer += chunk
        assert time.monotonic() - start < BODY_TIMEOUT + 10
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive within" in answer


def test_a_live_stream_outlives_the_body_timeout(edge: Server, http: httpx.Client) -> None:
    rid = external_run(http)
    with (
        httpx.Client(base_url=edge.url, timeout=30) as watcher,
        watcher.stream("GET", f"/api/runs/{rid}/events") as stream,
    ):
        assert stream.status_code == 200
        opened = time.monotonic()
        wait_until(lambda: time.monotonic() - opened > BODY_TIMEOUT + 1, what="the body deadline")
        point = {"key": "outlived", "step": 1, "value": 1.0}
        assert http.post(f"/api/runs/{rid}/metrics", json={"points": [point]}).status_code == 202
        assert any("outlived" in line for line in stream.iter_lines())


def test_a_burst_of_a_few_hundred_connections_sees_no_503(edge: Server) -> None:
    # A static file: uvicorn's connection limit is under test, not the database's.
    request = (
        f"GET /static/style.css HTTP/1.1\r\nHost: 127.0.0.1:{edge.port}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", edge.port)) for _ in range(300)]
    try:
        for sock in socks:
            sock.sendall(request)
        statuses = []
        for sock in socks:
            sock.settimeout(60)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            statuses.append(answer.split(b" ", 2)[1])
    finally:
        for sock in socks:
            sock.close()
    assert set(statuses) == {b"200"}


# What /static serves


def test_static_serves_the_page_and_not_npm_metadata(http: httpx.Client) -> None:
    frontend = default_frontend_dir()
    page_files = [*frontend.glob("*.js"), *frontend.glob("*.css"), *frontend.glob("views/*.js")]
    assert len(page_files) >= 8
    for file in page_files:
        response = http.get(f"/static/{file.relative_to(frontend).as_posix()}")
        assert response.status_code == 200 and response.content == file.read_bytes(), file
    index = http.get("/").text
    assert '"/static/app.js"' in index and '"/vendor/uplot/uPlot.iife.min.js"' in index
    assert http.get("/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert http.get("/vendor/uplot/uPlot.min.css").status_code == 200
    for path in (
        "/static/package.json",
        "/static/package-lock.json",
        "/static/node_modules/uplot/package.json",
        "/static/node_modules/uplot/dist/uPlot.iife.min.js",
        "/static/index.html",
        "/static/views/",
    ):
        assert http.get(path).status_code == 404, path


# What `trainboard runs` prints


def test_terminal_safe_escapes_every_control_character() -> None:
    assert terminal_safe("a\x1b[2J\x07\x7f\x9b31m\n\tb") == "a\\x1b[2J\\x07\\x7f\\x9b31m\\x0a\\x09b"
    assert terminal_safe("naïve → ok") == "naïve → ok"


def test_runs_and_submit_print_run_names_escaped(
    edge: Server, http: httpx.Client, tmp_path: Path
) -> None:
    evil = "evil\x1b[2J\x9b"
    external_run(http, name=evil)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(tiny_spec(name=evil)))
    env = process_env(edge.home, edge.database_url)
    for command in (["runs"], ["submit", str(spec)]):
        done = subprocess.run(
            [sys.executable, "-m", "trainboard", *command, "--url", edge.url],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
        assert b"\x1b" not in done.stdout and b"\xc2\x9b" not in done.stdout, done.stdout
        assert "evil\\x1b[2J\\x9b" in done.stdout.decode(), done.stdout


# Embedded workers die with `serve`


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(child) for child in task.read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    direct = children(pid)
    return direct + [grandchild for child in direct for grandchild in descendants(child)]


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_kill_9_of_serve_takes_its_embedded_workers_down(tmp_path: Path) -> None:
    server = Server(tmp_path, f"sqlite:///{tmp_path / 'trainboard.db'}", workers=1).start()
    assert server.process is not None
    pid = server.process.pid
    everyone: list[int] = []
    try:
        worker = wait_until(lambda: children(pid), what="the embedded worker")[0]
        # The signal follows the thread that started the worker: it must outlive the startup.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            rid = queued_run(http)
            wait_until(
                lambda: http.get(f"/api/runs/{rid}").json()["status"] == "completed",
                timeout=120,
                what="a run trained by the embedded worker",
            )
        assert children(pid) == [worker]
        everyone = [worker, *wait_until(lambda: descendants(worker), what="its warm run process")]
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
        wait_until(
            lambda: not any(alive(p) for p in everyone),
            timeout=30,
            what="the orphaned worker and its run process to exit",
        )
    finally:
        server.stop()
        for orphan in everyone:  # only left when the test failed
            if alive(orphan):
                os.kill(orphan, signal.SIGKILL)

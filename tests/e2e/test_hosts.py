"""The server and two remote workers on three network hosts of this machine (`ip netns`): the
database is reachable from the server's host alone, a worker whose link is cut past the lease
loses its run to the other, and once plugged back in writes nothing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import netns
from tests.conftest import fresh_database
from tests.e2e.test_queue import slow
from tests.helpers import free_port, process_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_SECONDS = 4
EPOCHS = 8  # long enough to cut a link after the first checkpoint and still be mid-run
POSTGRES_PORT = 5432
EPOCH_KEYS = ("train_loss", "val_loss", "val_accuracy", "grad_norm", "lr")


@pytest.fixture
def hosts() -> Iterator[list[netns.Host]]:
    """Two worker hosts, removed at teardown; skipped where namespaces cannot be made."""
    try:
        with netns.hosts(2) as made:
            yield made
    except netns.NamespacesUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI runs as root and must run this test)")
        pytest.skip(str(exc))


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL to the whole process group (a worker's run process included)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def stop_all(processes: list[Started]) -> None:
    """Stop the workers before the server; print what each said (shown when the test fails)."""
    for started in reversed(processes):
        stop(started.process)
    for started in processes:
        print(f"--- {started.log.parent.name}/{started.log.name}:\n{started.output()[-4000:]}")


@dataclass
class Started:
    """A process of the test and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(argv: list[str], env: dict[str, str], log: Path, processes: list[Started]) -> Started:
    started = Started(
        subprocess.Popen(
            argv,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() reaches its children too
        ),
        log,
    )
    processes.append(started)
    return started


def start_server(
    home: Path, database_url: str, env: dict[str, str], processes: list[Started]
) -> int:
    """`trainboard serve` on every address of the root namespace, with no embedded workers."""
    port = free_port()
    argv = [sys.executable, "-m", "trainboard", "serve", "--host", "0.0.0.0", "--port", str(port)]
    server = start(
        [*argv, "--workers", "0"],
        process_env(home, database_url, **env),
        home / "server.log",
        processes,
    )

    def healthy() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited: {server.output()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).is_success
        return False

    wait_until(healthy, timeout=60, interval=0.2, what="the server to answer /api/health")
    return port


def start_worker(
    host: netns.Host, port: int, token: str, folder: Path, processes: list[Started]
) -> Started:
    """A remote worker on `host`, told only the server's URL and token: its environment holds
    no trainboard setting but its own empty scratch home."""
    scratch = folder / "home"
    scratch.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINBOARD_")}
    env |= {"TRAINBOARD_HOME": str(scratch), "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "trainboard", "worker", "--device", "cpu", "--home", str(scratch)]
    remote = ["--server", f"http://{host.gateway}:{port}", "--token", token]
    return start(host.command(*argv, *remote), env, folder / "worker.log", processes)


def assert_isolated(hosts: list[netns.Host]) -> None:
    """The database listens on the server's host alone, and worker hosts cannot reach each
    other: a worker host reaches the root side of its own link and nothing else."""
    for host in hosts:
        for address in ("127.0.0.1", host.gateway):
            result = host.connects(address, POSTGRES_PORT)
            assert result != "connected", f"{host.namespace} reaches {address}:{POSTGRES_PORT}"
    first, second = hosts
    assert first.connects(second.address, 22) != "connected"
    assert second.connects(first.address, 22) != "connected"


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def submit(self, spec: dict[str, Any]) -> int:
        response = self.http.post("/api/runs", json=spec)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, rid: int) -> dict[str, Any]:
        response = self.http.get(f"/api/runs/{rid}")
        assert response.status_code == 200, response.text
        return response.json()

    def worker(self, pid: int) -> dict[str, Any] | None:
        """The worker record of the process `pid` (a worker's own pid, as it registers)."""
        workers = self.http.get("/api/workers").json()
        return next((w for w in workers if w["pid"] == pid), None)

    def checkpoints(self, rid: int) -> list[dict[str, Any]]:
        return self.http.get(f"/api/runs/{rid}/checkpoints").json()

    def worker_id(self, started: Started) -> str:
        """The id of the worker process `started`, once it has registered."""
        pid = started.process.pid
        return wait_until(lambda: self.worker(pid), timeout=90, what=f"worker {pid}")["id"]

    def series(self, rid: int) -> dict[str, Any]:
        return self.http.get(f"/api/runs/{rid}/metrics").json()["series"]

    def traces(self, rid: int) -> dict[str, Any]:
        """Everything a worker writes about a run, to compare before and after."""
        run = self.run(rid)
        return {
            "run": {k: run[k] for k in ("status", "attempt", "epoch", "worker", "finished_at")},
            "metrics": self.series(rid),
            "logs": self.http.get(f"/api/runs/{rid}/logs").text,
            "checkpoints": self.checkpoints(rid),
        }

    def assert_one_point_per_epoch(self, rid: int) -> None:
        series = self.series(rid)
        for key in EPOCH_KEYS:
            assert series[key]["steps"] == list(range(1, EPOCHS + 1)), (key, series[key])


def test_a_worker_cut_off_past_its_lease_loses_its_run_and_writes_nothing_when_back(
    hosts: list[netns.Host], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    home = tmp_path / "server"
    home.mkdir()
    token = secrets.token_urlsafe(24)
    env = {
        "TRAINBOARD_TOKEN": token,
        "TRAINBOARD_ALLOWED_HOSTS": json.dumps([h.gateway for h in hosts] + ["127.0.0.1"]),
        "TRAINBOARD_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    processes: list[Started] = []
    with contextlib.ExitStack() as cleanup:
        database_url = cleanup.enter_context(fresh_database("postgres", home, request))
        cleanup.callback(stop_all, processes)
        assert_isolated(hosts)
        port = start_server(home, database_url, env, processes)
        api = Api(port, token)
        assert httpx.get(f"http://127.0.0.1:{port}/api/runs").status_code == 401
        stale_host, other_host = hosts
        stale = start_worker(stale_host, port, token, tmp_path / "worker1", processes)
        other = start_worker(other_host, port, token, tmp_path / "worker2", processes)
        stale_id, other_id = api.worker_id(stale), api.worker_id(other)

        # Both runs train at once, one on each worker (both idle when they are submitted).
        ids = [api.submit(slow(name=f"hosts {i}", epochs=EPOCHS)) for i in (1, 2)]

        def both_running() -> dict[str, int] | None:
            runs = [api.run(rid) for rid in ids]
            by_worker = {r["worker"]: r["id"] for r in runs if r["status"] == "running"}
            return by_worker if by_worker.keys() == {stale_id, other_id} else None

        by_worker = wait_until(both_running, timeout=60, interval=0.2, what="both runs running")
        cut, kept = by_worker[stale_id], by_worker[other_id]

        # Unplugged after its first checkpoint, the worker's lease runs out and the other worker
        # takes its run over once done with its own.
        wait_until(lambda: api.checkpoints(cut), timeout=60, interval=0.2, what="a checkpoint")
        stale_host.set_link(up=False)
        unplugged = time.monotonic()
        moved = wait_until(
            lambda: (r := api.run(cut))["attempt"] >= 2 and r["worker"] == other_id and r,
            timeout=120,
            interval=0.2,
            what="the cut worker's run to move to the other worker",
        )
        print(f"moved after {time.monotonic() - unplugged:.1f}s, at epoch {moved['epoch']}")
        assert api.worker(stale.process.pid)["status"] == "busy"  # not heard from since

        # Plugged back in while the other worker trains its run: the stale worker's writes are
        # refused, and the run ends with one point per epoch.
        stale_host.set_link(up=True)
        replugged = time.monotonic()
        for rid in ids:
            wait_until(
                lambda rid=rid: api.run(rid)["status"] not in ("queued", "running"),
                timeout=120,
                interval=0.2,
                what=f"run {rid} to end",
            )
        run = api.run(cut)
        assert run["status"] == "completed" and run["attempt"] >= 2, run
        assert run["worker"] == other_id
        assert "resuming from" in api.http.get(f"/api/runs/{cut}/logs").text
        api.assert_one_point_per_epoch(cut)
        run = api.run(kept)
        assert run["status"] == "completed" and run["attempt"] == 1, run
        api.assert_one_point_per_epoch(kept)

        # The stale worker is heard from again, idle: a worker reports idle once its attempt is
        # over, after all it sends of it. What it sent changed nothing.
        before = api.traces(cut)
        wait_until(
            lambda: api.worker(stale.process.pid)["status"] == "idle",
            timeout=60,
            interval=0.5,
            what="the stale worker to report idle",
        )
        print(f"stale worker idle {time.monotonic() - replugged:.1f}s after the link came back")
        assert api.traces(cut) == before
        api.assert_one_point_per_epoch(cut)

        # The workers kept nothing of the server's: no database file, no database address.
        for started in (stale, other):
            assert not list(started.log.parent.rglob("*.db")), started.log.parent
            assert "postgresql" not in started.output()

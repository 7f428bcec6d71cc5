"""Tracking your own script, end to end: real servers, real script processes. The server
stops, never starts, or outlives a killed script; the script never fails because of it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Server, free_port, process_env, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One SQLite server for the module (the database layer's tests cover PostgreSQL)."""
    home = tmp_path_factory.mktemp("tracking-home")
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}").start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


class Script:
    """A user's script in a process of its own, its output in files."""

    def __init__(self, folder: Path, source: str, url: str, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.spool = folder, folder / "spool"
        path = folder / "script.py"
        path.write_text(textwrap.dedent(source))
        self.out, self.err = folder / "out.txt", folder / "err.txt"
        environment = process_env(folder, "sqlite://") | {
            "TRAINBOARD_URL": url,
            "TRAINBOARD_SPOOL_DIR": str(self.spool),
            **env,
        }
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(path)], cwd=folder, env=environment, stdout=out, stderr=err
            )

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait(self, timeout: float = 90) -> int:
        return self.process.wait(timeout=timeout)


def run_named(http: httpx.Client, name: str) -> list[dict]:
    return [
        r for r in http.get("/api/runs", params={"q": name}).json()["items"] if r["name"] == name
    ]


def series(http: httpx.Client, run_id: int, key: str) -> dict:
    found = http.get(f"/api/runs/{run_id}/metrics", params={"keys": key}).json()["series"]
    return found.get(key, {"steps": [], "values": []})


LOG_300 = """
    import json, time
    import trainboard

    trainboard.init(name="through-a-restart", config={"lr": 0.1})
    spent = []
    for step in range(300):
        started = time.perf_counter()
        trainboard.log({"loss": 1.0 / (step + 1)})
        spent.append(time.perf_counter() - started)
        print(f"step {step}", flush=True)
        time.sleep(0.03)
    trainboard.finish()
    spent.sort()
    print(json.dumps({"worst": spent[-1], "p99": spent[int(0.99 * len(spent))]}))
"""


def test_server_stopped_mid_script_loses_nothing(
    server: Server, http: httpx.Client, tmp_path
) -> None:
    script = Script(tmp_path / "restart", LOG_300, server.url)
    run = wait_until(lambda: run_named(http, "through-a-restart"), what="the run to be created")[0]
    wait_until(lambda: len(series(http, run["id"], "loss")["steps"]) >= 20, what="first points")
    server.stop()
    wait_until(lambda: "step 150" in script.stdout(), timeout=60, what="logging while down")
    server.start()  # the same port, home and database
    assert script.wait() == 0, script.stderr()
    timings = json.loads(script.stdout().splitlines()[-1])
    # A log call only appends to a queue; the bound leaves room for a loaded 2-core machine.
    assert timings["worst"] < 0.02, timings
    assert "points are kept in" in script.stderr()
    got = http.get(f"/api/runs/{run['id']}").json()
    assert got["status"] == "completed" and got["spec"]["params"]["lr"] == 0.1
    loss = series(http, run["id"], "loss")
    assert loss["steps"] == list(range(300))
    assert loss["values"][299] == pytest.approx(1 / 300)


NEVER_UP = """
    import trainboard

    run = trainboard.init(name="NAME", config={"batch": 32})
    for step in range(120):
        run.log({"loss": 2.0 - step / 100, "acc": step / 120})
    run.finish()
    print("finished")
"""


def sync(folder: Path, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainboard", "sync", str(folder), "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(folder, "sqlite://"),
    )


def test_server_never_up_then_sync_twice(server: Server, http: httpx.Client, tmp_path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    script = Script(tmp_path / "never", NEVER_UP.replace("NAME", "never-up"), nowhere)
    assert script.wait(60) == 0, script.stderr()
    assert "finished" in script.stdout() and "trainboard sync" in script.stderr()
    [folder] = list(script.spool.iterdir())
    refused = sync(folder, nowhere)
    assert refused.returncode == 1 and "cannot reach" in refused.stderr
    first = sync(folder, server.url)
    assert first.returncode == 0 and "points sent" in first.stdout, first.stderr
    again = sync(script.spool, server.url)  # the whole spool folder: the same run again
    assert again.returncode == 0 and ", 0 points sent" in again.stdout, again.stdout
    [run] = run_named(http, "never-up")
    assert run["status"] == "completed" and run["spec"]["params"]["batch"] == 32
    assert series(http, run["id"], "loss")["steps"] == list(range(120))
    assert series(http, run["id"], "acc")["values"][-1] == pytest.approx(119 / 120)


def test_offline_mode_writes_only_the_spool(server: Server, http: httpx.Client, tmp_path) -> None:
    source = NEVER_UP.replace("NAME", "offline-run")
    script = Script(tmp_path / "offline", source, server.url, TRAINBOARD_MODE="offline")
    assert script.wait(60) == 0, script.stderr()
    assert run_named(http, "offline-run") == []
    assert sync(script.spool, server.url).returncode == 0
    [run] = run_named(http, "offline-run")
    assert len(series(http, run["id"], "loss")["steps"]) == 120


KILLED = """
    import time
    import trainboard

    run = trainboard.init(name="killed")
    for step in range(40):
        run.log({"loss": 1.0 / (step + 1)})
    run.flush()
    print("sent", flush=True)
    time.sleep(600)
"""


def test_killed_script_fails_after_the_timeout(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = Server(
        home, f"sqlite:///{home / 'trainboard.db'}", env_extra={"TRAINBOARD_EXTERNAL_TIMEOUT": "3"}
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            script = Script(tmp_path / "killed", KILLED, server.url)
            wait_until(lambda: "sent" in script.stdout(), timeout=60, what="the points sent")
            [run] = run_named(http, "killed")
            script.process.send_signal(signal.SIGKILL)
            script.wait()
            ended = wait_until(
                lambda: (
                    (r := http.get(f"/api/runs/{run['id']}").json())["status"] == "failed" and r
                ),
                timeout=30,
                what="the silent run to fail",
            )
            assert "stopped reporting" in ended["error"] and "3 s" in ended["error"]
            assert series(http, run["id"], "loss")["steps"] == list(range(40))
    finally:
        server.stop()


WANDB_STYLE = """
    import torch
    import trainboard as wandb

    wandb.init(project="digits", name="wandb-style", config={"lr": 0.01, "epochs": 3})
    assert wandb.config.lr == 0.01 and wandb.run.config["epochs"] == 3
    wandb.define_metric("loss", summary="min")
    model = torch.nn.Linear(4, 2)
    wandb.watch(model, log_freq=1)
    for i in range(10):
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        wandb.log({"loss": loss.item(), "nested": {"lr": 0.01}, "note": "text is skipped"})
        model.zero_grad()
    wandb.run.summary["best"] = 0.5
    print("wandb says hi")
"""

FAILING = """
    import sys
    import trainboard as wandb

    wandb.init(name="exits-3")
    wandb.log({"loss": 1.0})
    sys.exit(3)
"""


def test_wandb_style_scripts(server: Server, http: httpx.Client, tmp_path) -> None:
    ok = Script(tmp_path / "wandb", WANDB_STYLE, server.url)
    bad = Script(tmp_path / "failing", FAILING, server.url)
    assert ok.wait() == 0, ok.stderr()
    assert bad.wait() == 3, bad.stderr()
    [run] = run_named(http, "wandb-style")  # no finish(): ended at exit
    assert run["status"] == "completed" and "digits" in run["tags"]
    assert run["spec"]["params"]["lr"] == 0.01 and "python" in run["spec"]["params"]["_code"]
    assert run["summary"]["best"] == 0.5
    assert series(http, run["id"], "loss")["steps"] == list(range(10))
    assert series(http, run["id"], "nested/lr")["values"] == [0.01] * 10
    assert series(http, run["id"], "layer_grad_norm/weight")["steps"] == list(range(10))
    assert "wandb says hi" in http.get(f"/api/runs/{run['id']}/logs").text
    [failed] = run_named(http, "exits-3")
    assert failed["status"] == "failed" and "3" in failed["error"]


def test_checkpoint_uploads_must_load_as_weights(http: httpx.Client, tmp_path) -> None:
    import datetime
    import io

    import torch

    rid = http.post("/api/runs", json={"kind": "external", "name": "uploads"}).json()["id"]

    def upload(payload: object, epoch: int) -> httpx.Response:
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return http.post(
            f"/api/runs/{rid}/checkpoints",
            files={"file": ("model.pt", buffer.getvalue())},
            data={"epoch": str(epoch)},
        )

    pickled = upload({"made": datetime.datetime(2026, 1, 1)}, 1)  # not a weights-only type
    assert pickled.status_code == 422 and "weights_only=True" in pickled.json()["detail"]
    garbage = http.post(
        f"/api/runs/{rid}/checkpoints", files={"file": ("x.pt", b"not a checkpoint")}
    )
    assert garbage.status_code == 422
    assert http.get(f"/api/runs/{rid}/checkpoints").json() == []  # nothing stored
    assert upload({"model_state_dict": {"w": torch.ones(2)}}, 1).status_code == 201
    again = upload({"model_state_dict": {"w": torch.zeros(2)}}, 1)
    assert again.status_code == 409  # never silently overwritten
    saved = http.get(f"/api/runs/{rid}/checkpoints/epoch-0001").content
    assert torch.load(io.BytesIO(saved), weights_only=True)["model_state_dict"]["w"].sum() == 2


WRITER = """
    import torch
    from trainboard.tensorboard import SummaryWriter

    with SummaryWriter("runs/writer-run") as writer:
        for step in range(5):
            writer.add_scalar("loss/train", 1.0 / (step + 1), step)
            writer.add_scalars("acc", {"train": step / 5, "val": step / 10}, step)
            writer.add_histogram("weights", torch.arange(4.0) + step, step)
            writer.add_image("ignored", torch.zeros(3, 2, 2), step)
        writer.add_hparams({"lr": 0.1, "optimizer": "sgd"}, {"hparam/best": 0.2})
        writer.flush()
"""


def test_summary_writer_script(server: Server, http: httpx.Client, tmp_path) -> None:
    script = Script(tmp_path / "writer", WRITER, server.url)
    assert script.wait() == 0, script.stderr()
    [run] = run_named(http, "writer-run")
    assert run["status"] == "completed" and run["spec"]["params"]["optimizer"] == "sgd"
    assert series(http, run["id"], "loss/train")["values"][-1] == pytest.approx(0.2)
    assert series(http, run["id"], "acc/val")["steps"] == list(range(5))
    assert series(http, run["id"], "weights/mean")["values"] == [1.5, 2.5, 3.5, 4.5, 5.5]
    assert series(http, run["id"], "weights/max")["values"][0] == 3.0
    assert series(http, run["id"], "weights/std")["values"][0] == pytest.approx(1.118, abs=1e-3)
    assert series(http, run["id"], "hparam/best")["values"] == [0.2]


def test_import_tensorboard_matches_tensorboards_reader(
    server: Server, http: httpx.Client, tmp_path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    logdir = tmp_path / "tb"
    for name, scale in (("first", 1.0), ("nested/second", 2.0)):
        with SummaryWriter(str(logdir / name)) as writer:
            for step in range(0, 50, 5):
                writer.add_scalar("loss", scale / (step + 1), step)
                writer.add_scalar("lr (x1000)", scale * step, step)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainboard",
            "import",
            "tensorboard",
            str(logdir),
            "--url",
            server.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=process_env(tmp_path, "sqlite://"),
    )
    assert done.returncode == 0, done.stderr
    for name in ("first", "nested/second"):
        [run] = run_named(http, name)
        reader = EventAccumulator(str(logdir / name))
        reader.Reload()
        for tag, key in (("loss", "loss"), ("lr (x1000)", "lr__x1000_")):
            events = reader.Scalars(tag)
            got = series(http, run["id"], key)
            assert got["steps"] == [e.step for e in events]
            assert got["values"] == pytest.approx([e.value for e in events], rel=1e-7)
    bad = subprocess.run(
        [sys.executable, "-m", "trainboard", "import", "tensorboard", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        env=process_env(tmp_path, "sqlite://"),
    )
    assert bad.returncode == 2 and "is not a folder" in bad.stderr


def test_a_queued_run_records_its_processes_cpu_and_memory(page, tmp_path) -> None:
    from tests.helpers import tiny_spec

    home = tmp_path / "home"
    home.mkdir()
    server = Server(
        home,
        f"sqlite:///{home / 'trainboard.db'}",
        workers=1,
        env_extra={"TRAINBOARD_SYSTEM_SECONDS": "0.2"},
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            spec = tiny_spec(dataset={"name": "moons", "params": {"n_samples": 4000}}, epochs=8)
            rid = http.post("/api/runs", json=spec).json()["id"]
            wait_until(
                lambda: http.get(f"/api/runs/{rid}").json()["status"] == "completed",
                timeout=120,
                what="the queued run to complete",
            )
            memory = series(http, rid, "system/memory_mb")
            assert memory["steps"] and min(memory["values"]) > 20  # a torch process's MB
            assert series(http, rid, "system/cpu_percent")["steps"] == memory["steps"]
            page.goto(f"{server.url}/#/run/{rid}")
            for chart in ("cpu", "memory"):
                shown = f"[data-chart={chart}] .uplot"
                wait_until(
                    lambda s=shown: (
                        page.evaluate(f"Number(document.querySelector({s!r})?.dataset.points || 0)")
                        == len(memory["steps"])
                    ),
                    what=f"the run page's {chart} curve",
                )
    finally:
        server.stop()


def test_the_log_endpoint_takes_text_for_running_external_runs_only(http: httpx.Client) -> None:
    from tests.helpers import tiny_spec

    rid = http.post("/api/runs", json={"kind": "external", "name": "log-lines"}).json()["id"]
    assert http.post(f"/api/runs/{rid}/log", json={"text": "epoch 1\n"}).status_code == 202
    assert http.get(f"/api/runs/{rid}/logs").text == "epoch 1\n"
    too_long = http.post(f"/api/runs/{rid}/log", json={"text": "x" * (1 << 20 | 1)})
    assert too_long.status_code == 422 and "text" in str(too_long.json()["detail"])
    assert http.post(f"/api/runs/{rid}/log", json={"lines": []}).status_code == 422
    assert http.post("/api/runs/999999/log", json={"text": "x"}).status_code == 404
    job = http.post("/api/runs", json=tiny_spec(name="queued-one")).json()["id"]
    refused = http.post(f"/api/runs/{job}/log", json={"text": "x"})
    assert refused.status_code == 409 and "queued job" in refused.json()["detail"]
    http.post(f"/api/runs/{job}/cancel", json={})
    http.post(f"/api/runs/{rid}/finish", json={"status": "completed"})
    assert http.post(f"/api/runs/{rid}/log", json={"text": "late"}).status_code == 409

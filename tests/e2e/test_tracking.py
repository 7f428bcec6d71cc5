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
    # A 1 MiB upload limit: a zip bomb over 4 times it is quick to make.
    limit = {"TRAINBOARD_MAX_UPLOAD_BYTES": str(1 << 20)}
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}", env_extra=limit).start()
    yield server
    server.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


class Script:
    """A user's script in a process of its own, its output in files."""

    def __init__(self, folder: Path, source: str, url: str, *args: str, **env: str) -> None:
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
                [sys.executable, str(path), *args],
                cwd=folder,
                env=environment,
                stdout=out,
                stderr=err,
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
    # A log call only appends to a queue. A network call with the server down (a connect
    # attempt, a timeout) would take seconds; a loaded 2-core machine's scheduler, not that.
    assert timings["p99"] < 0.005 and timings["worst"] < 0.5, timings
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
    import os, time
    import trainboard

    run = trainboard.init(name="NAME")
    for step in range(40):
        run.log({"loss": 1.0 / (step + 1)})
    run.flush()
    print("sent", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    for step in range(40, 80):
        run.log({"loss": 1.0 / (step + 1)})
    run.finish()
"""


def test_killed_script_fails_after_the_timeout_and_a_paused_one_comes_back(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = Server(
        home, f"sqlite:///{home / 'trainboard.db'}", env_extra={"TRAINBOARD_EXTERNAL_TIMEOUT": "3"}
    ).start()
    scripts = {
        name: Script(tmp_path / name, KILLED.replace("NAME", name), server.url)
        for name in ("killed", "paused", "alive")
    }
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for script in scripts.values():
                wait_until(lambda s=script: "sent" in s.stdout(), timeout=60, what="a flush")
            runs = {name: run_named(http, name)[0]["id"] for name in scripts}
            for name, rid in runs.items():  # a flush may answer once they are spooled
                wait_until(
                    lambda r=rid: len(series(http, r, "loss")["steps"]) == 40, what=f"{name} sent"
                )
            scripts["killed"].process.send_signal(signal.SIGKILL)
            scripts["killed"].wait()
            scripts["paused"].process.send_signal(signal.SIGSTOP)  # a laptop asleep

            def status(name: str) -> dict:
                return http.get(f"/api/runs/{runs[name]}").json()

            for name in ("killed", "paused"):
                ended = wait_until(
                    lambda n=name: (r := status(n))["status"] == "failed" and r,
                    timeout=30,
                    what=f"the silent {name} run to fail",
                )
                assert "stopped reporting" in ended["error"] and "3 s" in ended["error"]
            # Its heartbeats (as often as the server asks) keep the live one running.
            assert status("alive")["status"] == "running"
            scripts["paused"].process.send_signal(signal.SIGCONT)
            for name in ("paused", "alive"):
                (tmp_path / name / "go").write_text("")
                assert scripts[name].wait() == 0, scripts[name].stderr()
                assert status(name)["status"] == "completed" and status(name)["error"] is None
                assert series(http, runs[name], "loss")["steps"] == list(range(80))
            assert series(http, runs["killed"], "loss")["steps"] == list(range(40))
    finally:
        for script in scripts.values():
            script.process.kill()
        server.stop()


ODD_VALUES = """
    import pathlib, time
    import trainboard

    config = {"data": pathlib.Path("/data"), "limit": float("inf"), "deep": {"a": [1, {"b": 2}]}}
    run = trainboard.init(name="odd-values", config=config)
    run.log({"loss": 1.0}, step=2**70)  # refused here, with a sentence
    run.log({"bad key!": 1.0, "huge": 10**400, "loss": 0.0})
    run.queue.append(("loss", 2**70, 1.0, time.time()))  # one the server refuses (422)
    for step in range(1, 21):
        run.log({"loss": 1.0 / step})
    run.finish()
"""


def test_odd_config_values_and_refused_points_lose_nothing_else(
    server: Server, http: httpx.Client, tmp_path
) -> None:
    script = Script(tmp_path / "odd", ODD_VALUES, server.url)
    assert script.wait() == 0, script.stderr()
    err = script.stderr()
    assert "outside 0..2**62" in err and "'bad key!' is not logged" in err
    assert "refused points are left out" in err and "spool" not in err, err
    [run] = run_named(http, "odd-values")
    params = run["spec"]["params"]
    assert params["data"] == "/data" and params["limit"] is None
    assert params["deep"] == {"a": [1, {"b": 2}]}
    assert run["status"] == "completed"
    assert series(http, run["id"], "loss")["steps"] == list(range(21))


def test_sync_leaves_out_a_spooled_point_the_server_refuses(
    server: Server, http: httpx.Client, tmp_path
) -> None:
    folder = tmp_path / "old-spool"
    folder.mkdir()
    meta = {"version": 1, "url": server.url, "uploads": {}, "finish": {"status": "completed"}}
    meta["create"] = {"kind": "external", "name": "refused-in-spool"}
    (folder / "run.json").write_text(json.dumps(meta))
    points = [["loss", step, 1.0, 0.0] for step in range(30)]
    points[10] = ["loss", 2**70, 1.0, 0.0]  # written by an older client
    (folder / "points.jsonl").write_text(json.dumps(points) + "\n")
    done = sync(folder, server.url)
    assert done.returncode == 0 and "left out" in done.stderr, done.stderr
    [run] = run_named(http, "refused-in-spool")
    assert run["status"] == "completed"
    assert series(http, run["id"], "loss")["steps"] == [s for s in range(30) if s != 10]


UNWRITABLE_SPOOL = """
    import os, time
    import trainboard

    run = trainboard.init(name="no-disk")
    for step in range(50):
        run.log({"loss": float(step)})
    run.flush(1)
    print("logged while down", flush=True)
    while not os.path.exists("go"):
        time.sleep(0.02)
    for step in range(50, 100):
        run.log({"loss": float(step)})
    run.finish()
"""


def test_an_unwritable_spool_keeps_points_in_memory_until_the_server_answers(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = Server(home, f"sqlite:///{home / 'trainboard.db'}")  # started only later
    (tmp_path / "file").write_text("a file, not a folder: no spool can be made under it")
    folder = tmp_path / "script"
    spool = str(tmp_path / "file" / "spool")
    script = Script(folder, UNWRITABLE_SPOOL, server.url, TRAINBOARD_SPOOL_DIR=spool)
    try:
        wait_until(lambda: "logged while down" in script.stdout(), what="logging while down")
        assert "cannot write the spool" in script.stderr()
        server.start()
        (folder / "go").write_text("")
        assert script.wait() == 0, script.stderr()
        assert "lost" not in script.stderr(), script.stderr()
        with httpx.Client(base_url=server.url, timeout=30) as http:
            [run] = run_named(http, "no-disk")
            assert run["status"] == "completed"
            assert series(http, run["id"], "loss")["steps"] == list(range(100))
    finally:
        script.process.kill()
        server.stop()


FORKS = """
    import os, sys, time
    import trainboard

    run = trainboard.init(name="forks")
    run.log({"loss": 1.0})
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        trainboard.log({"loss": 2.0})  # the parent's run: ignored here
        sys.exit(0)
    os.waitpid(pid, 0)
    print(f"child took {time.monotonic() - started:.2f}", flush=True)
    run.log({"loss": 0.5})
    run.finish()
"""


def test_a_forked_child_exits_at_once_and_leaves_the_run_to_its_parent(
    server: Server, http: httpx.Client, tmp_path
) -> None:
    script = Script(tmp_path / "forks", FORKS, server.url)
    assert script.wait(60) == 0, script.stderr()
    took = float(script.stdout().split("child took ")[1].split()[0])
    assert took < 5, script.stdout()
    [run] = run_named(http, "forks")
    assert run["status"] == "completed"
    assert series(http, run["id"], "loss")["values"] == [1.0, 0.5]


WANDB_STYLE = """
    import torch
    import trainboard as wandb
    import trainboard.config  # the settings module: `wandb.config` is the run's all the same

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

BUILTIN_EXIT = """
    import trainboard as wandb

    wandb.init(name="exit-4")
    wandb.log({"loss": 1.0})
    exit(4)
"""


def test_wandb_style_scripts(server: Server, http: httpx.Client, tmp_path) -> None:
    ok = Script(tmp_path / "wandb", WANDB_STYLE, server.url)
    bad = Script(tmp_path / "failing", FAILING, server.url)
    builtin = Script(tmp_path / "builtin", BUILTIN_EXIT, server.url)
    assert ok.wait() == 0, ok.stderr()
    assert bad.wait() == 3, bad.stderr()
    assert builtin.wait() == 4, builtin.stderr()
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
    [failed] = run_named(http, "exit-4")
    assert failed["status"] == "failed" and "4" in failed["error"]


def zip_bomb() -> bytes:
    """A torch.save zip (well formed, weights only) whose tensor's 8 MiB of zeros are
    deflated to a few KB: over 4 times the server's 1 MiB upload limit once unpacked."""
    import io
    import zipfile

    import torch

    saved = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, saved)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(saved) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb,
    ):
        for info in source.infolist():
            if info.filename.endswith("/data/0"):
                with bomb.open(info.filename, "w", force_zip64=True) as entry:
                    zeros = bytes(1 << 20)
                    for _ in range(8):
                        entry.write(zeros)
            else:
                bomb.writestr(info.filename, source.read(info.filename))
    return out.getvalue()


def plain_zip() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    return out.getvalue()


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
    for name, content in (("bomb.pt", zip_bomb()), ("other.zip", plain_zip())):
        refused = http.post(f"/api/runs/{rid}/checkpoints", files={"file": (name, content)})
        assert refused.status_code == 422, refused.text
    assert (
        "unpacks to"
        in http.post(
            f"/api/runs/{rid}/checkpoints", files={"file": ("bomb.pt", zip_bomb())}
        ).json()["detail"]
    )
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


def test_the_run_page_charts_each_gpu_the_run_recorded(
    server: Server, http: httpx.Client, page
) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "gpus"}).json()["id"]
    points = [
        {"key": f"system/gpu{i}_{what}", "step": step, "value": float(step + i)}
        for i in (0, 1)
        for what in ("util", "memory_mb")
        for step in range(5)
    ]
    assert http.post(f"/api/runs/{rid}/metrics", json={"points": points}).status_code == 202
    page.goto(f"{server.url}/#/run/{rid}")
    for chart in ("gpu", "gpu_memory"):
        shown = f"[data-chart={chart}] .uplot"
        wait_until(
            lambda s=shown: (
                page.evaluate(f"Number(document.querySelector({s!r})?.dataset.points || 0)") == 5
            ),
            what=f"the run page's {chart} chart",
        )
        legend = page.inner_text(f"[data-chart={chart}]")
        assert "system/gpu0" in legend and "system/gpu1" in legend, legend

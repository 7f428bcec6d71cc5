"""The REST API end to end: a real uvicorn server on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import json
import math

import httpx
import pytest
import torch
from trainboard.client import Client

from tests.helpers import Server, tiny_spec

pytestmark = pytest.mark.slow


@pytest.fixture
def http(shared_server: Server) -> httpx.Client:
    with httpx.Client(base_url=shared_server.url, timeout=30) as client:
        yield client


def test_health_and_catalog(http: httpx.Client) -> None:
    assert http.get("/api/health").json()["status"] == "ok"
    catalog = http.get("/api/catalog").json()
    names = {
        kind: {p["name"] for p in catalog[kind]}
        for kind in ("datasets", "models", "optimizers", "schedulers")
    }
    assert {
        "digits",
        "iris",
        "wine",
        "breast_cancer",
        "diabetes",
        "moons",
        "circles",
        "spirals",
        "regression",
        "sequences",
        "xor",
    } <= names["datasets"]
    assert {"mlp", "cnn", "transformer", "linear", "tiny_mlp"} <= names["models"]
    assert {"sgd", "adam", "adamw", "rmsprop"} <= names["optimizers"]
    assert {"none", "step", "multistep", "exponential", "cosine", "onecycle", "plateau"} <= names[
        "schedulers"
    ]
    digits = next(d for d in catalog["datasets"] if d["name"] == "digits")
    assert (digits["task"], digits["input_shape"], digits["num_classes"]) == (
        "classification",
        [1, 8, 8],
        10,
    )
    sgd = next(o for o in catalog["optimizers"] if o["name"] == "sgd")
    assert {"momentum", "nesterov"} <= set(sgd["params"]["properties"])
    assert (
        catalog["defaults"]["epochs"] == 10 and catalog["defaults"]["optimizer"]["name"] == "adamw"
    )


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        ({"optimizer": {"lr": -1}}, ["body", "job", "optimizer", "lr"], "greater than 0"),
        ({"epochs": 0}, ["body", "job", "epochs"], "greater than or equal to 1"),
        (
            {"dataset": {"name": "digits", "val_fraction": 1.5}},
            ["body", "job", "dataset", "val_fraction"],
            "less than 1",
        ),
        ({"dataset": {"name": "nope"}}, ["body", "dataset", "name"], "unknown dataset 'nope'"),
        (
            {"model": {"name": "cnn"}, "dataset": {"name": "iris"}},
            ["body", "model", "name"],
            "cnn needs image data",
        ),
        ({"optimizer": {"name": "lion"}}, ["body", "job", "optimizer"], "unknown optimizer 'lion'"),
        ({"amp": "fp8"}, ["body", "job", "amp"], "Input should be"),
        ({"surprise": 1}, ["body", "job", "surprise"], "Extra inputs"),
    ],
)
def test_a_bad_spec_gets_422_naming_the_field(
    http: httpx.Client, change: dict, loc: list, message: str
) -> None:
    response = http.post("/api/runs", json=tiny_spec() | change)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(d["loc"][: len(loc)] == loc and message in d["msg"] for d in detail), detail


def test_run_lifecycle_through_the_api(http: httpx.Client) -> None:
    created = http.post("/api/runs", json=tiny_spec(name="life", tags=["a", "b"]))
    assert created.status_code == 201
    run = created.json()
    assert (run["status"], run["epochs"], run["attempt"], run["tags"]) == (
        "queued",
        3,
        0,
        ["a", "b"],
    )
    assert run["spec"]["model"]["params"]["hidden_sizes"] == [16]  # stored complete
    assert "lease_expires_at" not in run and "metric_seq" not in run
    rid = run["id"]
    assert http.get(f"/api/runs/{rid}").json()["name"] == "life"
    patched = http.patch(
        f"/api/runs/{rid}", json={"name": "renamed", "notes": "<b>bold</b>", "tags": ["c"]}
    ).json()
    assert (patched["name"], patched["notes"], patched["tags"]) == ("renamed", "<b>bold</b>", ["c"])
    assert http.patch(f"/api/runs/{rid}", json={"status": "completed"}).status_code == 422
    listing = http.get("/api/runs", params={"tag": "c", "status": "queued"}).json()
    assert [r["id"] for r in listing["items"]] == [rid] and listing["total"] == 1
    assert http.delete(f"/api/runs/{rid}").status_code == 409  # queued
    assert http.post(f"/api/runs/{rid}/cancel", json={}).json()["status"] == "cancelled"
    assert http.post(f"/api/runs/{rid}/cancel", json={}).status_code == 409
    resumed = http.post(f"/api/runs/{rid}/resume", json={"epochs": 5})
    assert (
        resumed.status_code == 202
        and resumed.json()["status"] == "queued"
        and resumed.json()["epochs"] == 5
    )
    http.post(f"/api/runs/{rid}/cancel", json={})
    assert http.delete(f"/api/runs/{rid}").status_code == 204
    assert http.get(f"/api/runs/{rid}").status_code == 404
    assert http.get("/api/runs/999999").json()["detail"] == "run 999999 does not exist"
    assert http.get("/api/runs/not-a-number").status_code == 422


def test_external_run_metrics_checkpoints_and_finish(
    shared_server: Server, http: httpx.Client, tmp_path
) -> None:
    with Client(shared_server.url) as client, client.start_run("my-script", {"lr": 0.1}) as run:
        for epoch in range(1, 6):
            run.log({"train_loss": 1 / epoch, "val_loss": 2 / epoch}, step=epoch)
        run.log({"val_loss": float("nan")}, step=6)
        path = tmp_path / "model.pt"
        torch.save({"epoch": 5, "model_state_dict": {"w": torch.ones(3)}}, path)
        uploaded = run.log_checkpoint(path, epoch=5)
        rid = run.id
        run.flush()
        # A retried batch replaces, never duplicates.
        again = {"points": [{"key": "train_loss", "step": 2, "value": 0.25}]}
        assert http.post(f"/api/runs/{rid}/metrics", json=again).status_code == 202
    assert (
        uploaded["id"] == "epoch-0005"
        and uploaded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    got = http.get(f"/api/runs/{rid}").json()
    assert (
        got["status"] == "completed"
        and got["kind"] == "external"
        and got["spec"]["params"] == {"lr": 0.1}
    )
    series = http.get(f"/api/runs/{rid}/metrics").json()["series"]
    assert series["train_loss"]["steps"] == [1, 2, 3, 4, 5]
    assert series["val_loss"]["values"][-1] is None  # NaN stored, returned as null
    # A finished run's record is closed: no more points, no more checkpoints.
    late = http.post(f"/api/runs/{rid}/metrics", json=again)
    assert late.status_code == 409 and "has finished (completed)" in late.json()["detail"]
    late_file = http.post(
        f"/api/runs/{rid}/checkpoints",
        files={"file": ("late.pt", b"x")},
        data={"epoch": "9"},
    )
    assert late_file.status_code == 409
    assert not any(c["epoch"] == 9 for c in http.get(f"/api/runs/{rid}/checkpoints").json())
    series = http.get(f"/api/runs/{rid}/metrics", params={"keys": "train_loss"}).json()["series"]
    assert series["train_loss"]["values"] == [1.0, 0.25, pytest.approx(1 / 3), 0.25, 0.2]
    download = http.get(f"/api/runs/{rid}/checkpoints/latest")
    assert download.status_code == 200 and download.content == path.read_bytes()
    assert "attachment" in download.headers["content-disposition"]
    assert http.get(f"/api/runs/{rid}/checkpoints/best").status_code == 404  # no metrics, no best
    etag = download.headers["etag"]
    assert (
        http.get(
            f"/api/runs/{rid}/checkpoints/epoch-0005", headers={"If-None-Match": etag}
        ).status_code
        == 304
    )
    assert http.post(f"/api/runs/{rid}/finish", json={"status": "completed"}).status_code == 409


def test_metrics_read_downsamples_and_zooms(http: httpx.Client) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "long"}).json()["id"]
    values = [math.cos(i / 100) for i in range(10_000)]
    values[5_000] = 99.0
    for start in range(0, 10_000, 5_000):
        points = [
            {"key": "step/train_loss", "step": i, "value": values[i]}
            for i in range(start, start + 5_000)
        ]
        assert http.post(f"/api/runs/{rid}/metrics", json={"points": points}).status_code == 202
    series = http.get(f"/api/runs/{rid}/metrics", params={"max_points": 200}).json()["series"][
        "step/train_loss"
    ]
    assert len(series["steps"]) <= 200 and 99.0 in series["values"]
    zoom = http.get(
        f"/api/runs/{rid}/metrics", params={"max_points": 200, "x_min": 4_990, "x_max": 5_010}
    ).json()
    assert zoom["series"]["step/train_loss"]["steps"] == list(range(4_990, 5_011))
    assert http.get(f"/api/runs/{rid}/metrics", params={"max_points": 3}).status_code == 422
    bad = {"points": [{"key": "bad key!", "step": 1, "value": 1.0}]}
    assert http.post(f"/api/runs/{rid}/metrics", json=bad).status_code == 422


def test_metrics_of_a_queued_run_are_not_writable_by_clients(http: httpx.Client) -> None:
    rid = http.post("/api/runs", json=tiny_spec()).json()["id"]
    response = http.post(
        f"/api/runs/{rid}/metrics", json={"points": [{"key": "x", "step": 1, "value": 1}]}
    )
    assert response.status_code == 409
    upload = http.post(
        f"/api/runs/{rid}/checkpoints", files={"file": ("m.pt", b"x")}, data={"epoch": "1"}
    )
    assert upload.status_code == 409
    assert "its checkpoints are written by its worker" in upload.json()["detail"]
    http.post(f"/api/runs/{rid}/cancel", json={})


def test_a_checkpoint_is_never_overwritten_by_an_upload(http: httpx.Client) -> None:
    rid = http.post("/api/runs", json={"kind": "external"}).json()["id"]
    contents = []
    for value in (1.0, 2.0):  # uploads must load with torch.load(weights_only=True)
        buffer = io.BytesIO()
        torch.save({"w": torch.full((2,), value)}, buffer)
        contents.append(buffer.getvalue())
    first = http.post(
        f"/api/runs/{rid}/checkpoints", files={"file": ("a.pt", contents[0])}, data={"epoch": "3"}
    )
    assert first.status_code == 201
    again = http.post(
        f"/api/runs/{rid}/checkpoints", files={"file": ("b.pt", contents[1])}, data={"epoch": "3"}
    )
    assert again.status_code == 409 and "already has checkpoint 'epoch-0003'" in again.text
    assert http.get(f"/api/runs/{rid}/checkpoints/epoch-0003").content == contents[0]
    assert [c["sha256"] for c in http.get(f"/api/runs/{rid}/checkpoints").json()] == [
        first.json()["sha256"]
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/{rid}/checkpoints/..%2F..%2Ftrainboard.db",
        "/api/runs/{rid}/checkpoints/%2e%2e%2f%2e%2e%2ftrainboard.db",
        "/api/runs/{rid}/checkpoints/epoch-0001%2F..%2F..%2F..%2Ftrainboard.db",
        "/api/runs/{rid}/checkpoints/%2Fetc%2Fpasswd",
        "/api/runs/{rid}/checkpoints/%2e%2e",
        "/api/runs/{rid}/logs?offset=-1",
    ],
)
def test_path_traversal_attempts_read_nothing_outside_the_run(
    http: httpx.Client, path: str
) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "t"}).json()["id"]
    response = http.get(path.format(rid=rid))
    assert response.status_code in (404, 422)
    assert b"SQLite" not in response.content and b"root:" not in response.content


def test_a_run_without_a_log_reads_as_empty(http: httpx.Client) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "nolog"}).json()["id"]
    response = http.get(f"/api/runs/{rid}/logs")
    assert (
        response.status_code == 200
        and response.text == ""
        and response.headers["x-log-size"] == "0"
    )


def test_logs_read_from_an_offset(http: httpx.Client, shared_server: Server) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "log"}).json()["id"]
    text = "".join(f"epoch {i}: loss {1 / i:.4f}\n" for i in range(1, 40))
    log = shared_server.home / "runs" / str(rid) / "run.log"  # where a worker writes it
    log.parent.mkdir(parents=True)
    log.write_text(text)
    size = len(text.encode())

    def read(offset: int) -> tuple[str, int, int]:
        response = http.get(f"/api/runs/{rid}/logs", params={"offset": offset})
        assert response.status_code == 200
        headers = response.headers
        return response.text, int(headers["x-log-size"]), int(headers["x-next-offset"])

    assert read(0) == (text, size, size)
    assert read(100) == (text[100:], size, size)  # a follower asks only for what is new
    with log.open("a") as handle:
        handle.write("the end\n")
    assert read(size) == ("the end\n", size + 8, size + 8)
    assert read(10**6) == ("", size + 8, size + 8)  # past the end: nothing, and where it ends


def test_oversized_bodies_get_413(http: httpx.Client) -> None:
    big = {"points": [{"key": "k", "step": i, "value": 1.0} for i in range(60_000)]}
    rid = http.post("/api/runs", json={"kind": "external", "name": "big"}).json()["id"]
    response = http.post(
        f"/api/runs/{rid}/metrics",
        content=json.dumps(big),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


def test_a_foreign_host_header_is_refused(http: httpx.Client) -> None:
    assert http.get("/api/health", headers={"Host": "evil.example"}).status_code == 400


def test_csv_upload_names_what_is_wrong_and_keeps_what_is_stored(http: httpx.Client) -> None:
    good = b"a,b,color,label\n" + b"".join(
        f"{i},{i % 7},{'red' if i % 3 else 'blue'},{i % 2}\n".encode() for i in range(60)
    )
    made = http.post(
        "/api/datasets", files={"file": ("things.csv", good)}, data={"target": "label"}
    )
    assert made.status_code == 201, made.text
    assert made.json() == {
        "name": "things",
        "task": "classification",
        "rows": 60,
        "columns": ["a", "b", "color"],
        "target": "label",
    }
    assert (
        http.post(
            "/api/datasets", files={"file": ("things.csv", good)}, data={"target": "label"}
        ).status_code
        == 409
    )
    bad = http.post(
        "/api/datasets",
        files={"file": ("x.csv", b"a,label\n1,0\nzz,1\n3,0")},
        data={"target": "label", "name": "x"},
    )
    assert bad.status_code == 422 and "line 3 has 'zz'" in bad.text
    missing = http.post(
        "/api/datasets", files={"file": ("y.csv", good)}, data={"target": "nope", "name": "y"}
    )
    assert missing.status_code == 422 and "no column named 'nope'" in missing.text
    evil = http.post(
        "/api/datasets",
        files={"file": ("z.csv", good)},
        data={"target": "label", "name": "../../etc"},
    )
    assert evil.status_code == 422
    catalog = http.get("/api/catalog").json()
    assert any(d["name"] == "things" and d["task"] == "classification" for d in catalog["datasets"])
    assert http.post("/api/runs", json=tiny_spec(dataset={"name": "things"})).status_code == 201


def test_live_events_resume_from_last_event_id_without_gaps_or_repeats(
    shared_server: Server, http: httpx.Client
) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "live"}).json()["id"]

    def post(steps: range) -> None:
        points = [{"key": "loss", "step": s, "value": float(s)} for s in steps]
        assert http.post(f"/api/runs/{rid}/metrics", json={"points": points}).status_code == 202

    def read_until(headers: dict, want_steps: int) -> tuple[list[int], str]:
        steps: list[int] = []
        last_id = ""
        with httpx.stream(
            "GET", f"{shared_server.url}/api/runs/{rid}/events", headers=headers, timeout=30
        ) as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    last_id = line[4:]
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "metrics":
                    steps += [p["step"] for p in json.loads(line[6:])["points"]]
                    if len(steps) >= want_steps:
                        return steps, last_id
        return steps, last_id

    post(range(1, 11))
    first, cursor = read_until({}, 10)
    assert first == list(range(1, 11))
    post(range(11, 21))
    second, _ = read_until({"Last-Event-ID": cursor}, 10)
    assert second == list(range(11, 21))  # only what was missed
    http.post(f"/api/runs/{rid}/finish", json={"status": "failed", "error": "boom"})
    with httpx.stream("GET", f"{shared_server.url}/api/runs/{rid}/events", timeout=30) as stream:
        body = "".join(stream.iter_text())  # ends by itself once the run is final
    assert "event: status" in body and '"status": "failed"' in body


def test_workers_list_is_empty_without_workers(http: httpx.Client) -> None:
    assert http.get("/api/workers").json() == []
    assert http.get("/api/health").json()["workers"] == 0


def test_token_guards_every_api_route_but_health(start_server) -> None:
    server = start_server(TRAINBOARD_TOKEN="s3cret")
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/api/health").status_code == 200
        assert http.get("/api/runs").status_code == 401
        assert http.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert http.get("/api/catalog", params={"token": "s3cret"}).status_code == 200
        assert http.post("/api/runs", json=tiny_spec()).status_code == 401
        assert http.get("/").status_code == 200  # the page itself asks for the token
    with Client(server.url, token="s3cret") as client:
        assert client.list_runs() == []


def test_serve_refuses_a_public_host_without_a_token(home, database_url) -> None:
    import subprocess
    import sys

    from tests.helpers import process_env

    result = subprocess.run(
        [sys.executable, "-m", "trainboard", "serve", "--host", "0.0.0.0", "--workers", "0"],
        env=process_env(home, database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "without a token" in result.stderr


def test_page_and_uplot_are_served_locally(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and "/vendor/uplot/uPlot.iife.min.js" in page.text
    assert "cdn" not in page.text.lower()
    assert http.get("/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert http.get("/static/app.js").status_code == 200


def test_openapi_and_docs(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    assert "/api/runs/{run_id}/metrics" in schema["paths"]
    assert http.get("/docs").status_code == 200


def test_concurrent_writers_lose_nothing(shared_server: Server, http: httpx.Client) -> None:
    import subprocess
    import sys
    import textwrap

    rids = [
        http.post("/api/runs", json={"kind": "external", "name": f"w{i}"}).json()["id"]
        for i in range(4)
    ]
    script = textwrap.dedent(
        """
        import sys, httpx
        url, rid = sys.argv[1], int(sys.argv[2])
        with httpx.Client(base_url=url, timeout=60) as c:
            for batch in range(20):
                steps = range(batch * 50, batch * 50 + 50)
                pts = [{"key": k, "step": s, "value": 1.0} for k in ("a", "b") for s in steps]
                r = c.post(f"/api/runs/{rid}/metrics", json={"points": pts})
                assert r.status_code == 202, r.text
        """
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, shared_server.url, str(r)]) for r in rids
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        for rid in rids:
            assert http.get(f"/api/runs/{rid}/metrics").status_code == 200
            reads += 1
    assert all(w.wait() == 0 for w in writers)
    for rid in rids:
        series = http.get(f"/api/runs/{rid}/metrics").json()["series"]
        assert series["a"]["steps"] == list(range(1000)) and series["b"]["steps"] == list(
            range(1000)
        )
    assert reads > 0
    assert "database is locked" not in shared_server.log()


def test_uploading_a_checkpoint_that_is_too_large_gets_413(
    shared_server: Server, http: httpx.Client
) -> None:
    rid = http.post("/api/runs", json={"kind": "external", "name": "ck"}).json()["id"]
    blob = io.BytesIO(b"\0" * (65 * 1024 * 1024))
    response = http.post(f"/api/runs/{rid}/checkpoints", files={"file": ("big.pt", blob)})
    assert response.status_code == 413


def test_submit_and_runs_commands_talk_to_the_server(shared_server: Server, tmp_path) -> None:
    import subprocess
    import sys

    def trainboard(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "trainboard", *args, "--url", shared_server.url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(tiny_spec(name="from-the-cli")))
    bad.write_text(json.dumps(tiny_spec(optimizer={"lr": 0})))
    submitted = trainboard("submit", str(good))
    assert (
        submitted.returncode == 0
        and "queued run" in submitted.stdout
        and "from-the-cli" in submitted.stdout
    )
    refused = trainboard("submit", str(bad))
    assert refused.returncode == 2
    assert "422: optimizer.lr: Input should be greater than 0" in refused.stderr
    listed = trainboard("runs")
    assert listed.returncode == 0 and "from-the-cli" in listed.stdout and "queued" in listed.stdout
    unreachable = subprocess.run(
        [sys.executable, "-m", "trainboard", "runs", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr
    assert "Traceback" not in refused.stderr + unreachable.stderr

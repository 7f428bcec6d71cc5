"""Checkpoints as models against a real server and worker: every built-in model exported in
each format and reloaded by its own runtime, predictions as `load_model` gives them, bad rows
refused, the leaderboard, aliases that move, `trainboard export`, and the Models page."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
import trainboard
from trainboard.serving.examples import validation_rows
from trainboard.serving.graph import encode
from trainboard.training.spec import RunSpec

from tests.e2e.test_csv_roundtrip import make_csv
from tests.helpers import Server, process_env, wait_until

pytestmark = pytest.mark.slow

FORMATS = ("onnx", "torchscript", "pt2")
SPECS: dict[str, dict[str, Any]] = {
    "digits-mlp": {
        "dataset": {"name": "digits"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [32], "dropout": 0.0}},
        "epochs": 2,
    },
    "digits-cnn": {
        "dataset": {"name": "digits"},
        "model": {"name": "cnn", "params": {"channels": [8, 8]}},
        "epochs": 1,
    },
    "iris-linear": {"dataset": {"name": "iris"}, "model": {"name": "linear"}, "epochs": 1},
    "diabetes-mlp": {
        "dataset": {"name": "diabetes"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [16], "batch_norm": True}},
        "epochs": 1,
    },
    "sequences-transformer": {
        "dataset": {"name": "sequences", "params": {"n_samples": 200, "length": 9}},
        "model": {"name": "transformer", "params": {"layers": 1, "heads": 2, "width": 16}},
        "epochs": 1,
    },
    "churn-mlp": {
        "dataset": {"name": "churn"},
        "model": {"name": "mlp", "params": {"hidden_sizes": [16]}},
        "epochs": 2,
    },
    "xor-branchy": {
        "dataset": {"name": "xor", "params": {"n_samples": 200}},
        "model": {"name": "branchy"},
        "epochs": 1,
    },
}
EXPORTABLE = [name for name in SPECS if name != "xor-branchy"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("serving-home")
    server = Server(
        home,
        f"sqlite:///{home / 'trainboard.db'}",
        workers=1,
        env_extra={"TRAINBOARD_PREDICT_MAX_ROWS": "300"},
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def runs(site: Server) -> dict[str, int]:
    """Each spec trained once by the server's worker: run ids by name."""
    with httpx.Client(base_url=site.url, timeout=30) as http:
        upload = http.post(
            "/api/datasets",
            files={"file": ("churn.csv", make_csv(200).encode())},
            data={"target": "churned", "name": "churn"},
        )
        assert upload.status_code == 201, upload.text
        ids = {}
        for name, spec in SPECS.items():
            body = {"name": name, "optimizer": {"name": "adam", "lr": 0.01}, "seed": 1} | spec
            response = http.post("/api/runs", json=body)
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]

        def ended() -> bool:
            statuses = {http.get(f"/api/runs/{rid}").json()["status"] for rid in ids.values()}
            assert not statuses & {"failed", "diverged", "cancelled"}, statuses
            return statuses == {"completed"}

        wait_until(ended, timeout=180, interval=0.2, what="every run to complete")
    return ids


@pytest.fixture
def http(site: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=120) as client:
        yield client


def local_model(http: httpx.Client, run_id: int, tmp_path: Path) -> trainboard.TrainedModel:
    """The run's best checkpoint, downloaded and loaded as a user would."""
    response = http.get(f"/api/runs/{run_id}/checkpoints/best")
    assert response.status_code == 200, response.text
    path = tmp_path / f"run-{run_id}.pt"
    path.write_bytes(response.content)
    return trainboard.load_model(path)


def run_export(fmt: str, path: Path, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Outputs of an exported file through its format's own runtime, and its metadata."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        if fmt == "onnx":
            import onnx
            import onnxruntime

            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
            return torch.as_tensor(out), json.loads(meta["trainboard"])
        if fmt == "torchscript":
            extra = {"trainboard.json": ""}
            module = torch.jit.load(str(path), _extra_files=extra)
            return module(x).detach(), json.loads(extra["trainboard.json"])
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("extra/trainboard.json"))
            meta = json.loads(archive.read(name))
        with torch.no_grad():
            return torch.export.load(path).module()(x), meta


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", EXPORTABLE)
def test_each_model_exports_and_its_file_matches_load_model(
    http: httpx.Client, runs: dict[str, int], name: str, fmt: str, tmp_path: Path, site: Server
) -> None:
    run_id = runs[name]
    response = http.get(f"/api/runs/{run_id}/checkpoints/best/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    path = tmp_path / f"model.{fmt}"
    path.write_bytes(response.content)
    model = local_model(http, run_id, tmp_path)
    spec = RunSpec.model_validate(SPECS[name] | {"seed": 1})
    rows = validation_rows(model, spec, uploads_dir=site.home / "uploads")
    outputs, meta = run_export(fmt, path, encode(model, rows))
    assert meta["format"] == fmt and meta["run_id"] == run_id
    if model.info.task == "classification":
        expected = torch.as_tensor(model.predict_proba(rows))
        assert torch.allclose(torch.softmax(outputs.float(), dim=1), expected, atol=1e-4)
        assert len(meta["output"]["classes"]) == expected.shape[1]
    else:
        expected = torch.as_tensor(model.predict(rows), dtype=torch.float64)
        got = outputs.squeeze(1).double()
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), (got - expected).abs().max()
    assert len(outputs) == len(encode(model, rows)) > 1  # the batch dimension is dynamic


def test_a_second_export_comes_from_the_cache(
    http: httpx.Client, runs: dict[str, int], site: Server
) -> None:
    url = f"/api/runs/{runs['digits-mlp']}/checkpoints/latest/export"
    first = http.get(url, params={"format": "torchscript"})
    folder = site.home / "runs" / str(runs["digits-mlp"]) / "exports"
    (cached,) = folder.glob("*.torchscript.pt")
    built_at = cached.stat().st_mtime_ns
    second = http.get(url, params={"format": "torchscript"})
    assert second.status_code == 200 and second.content == first.content
    assert second.headers["x-trainboard-cache"] == "hit"
    assert second.headers["etag"] == first.headers["etag"]
    assert cached.stat().st_mtime_ns == built_at
    again = http.get(
        url, params={"format": "torchscript"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


def test_a_model_that_one_graph_cannot_hold_gets_422_saying_why(
    http: httpx.Client, runs: dict[str, int], site: Server
) -> None:
    url = f"/api/runs/{runs['xor-branchy']}/checkpoints/best/export"
    for fmt in ("pt2", "onnx"):
        response = http.get(url, params={"format": fmt})
        assert response.status_code == 422, response.text
        assert "branches on its inputs' values" in response.json()["detail"], response.text
    # TorchScript scripts the model, keeping its branch: that export is exact.
    assert http.get(url, params={"format": "torchscript"}).status_code == 200
    unknown = http.get(url, params={"format": "tflite"})
    assert unknown.status_code == 422 and "format" in unknown.text
    folder = site.home / "runs" / str(runs["xor-branchy"]) / "exports"
    assert sorted(p.name.split(".", 1)[1] for p in folder.iterdir()) == [
        "torchscript.json",
        "torchscript.pt",
    ]  # nothing left of the failed exports


def test_predict_on_digits_gives_load_models_classes(
    http: httpx.Client, runs: dict[str, int], tmp_path: Path
) -> None:
    from sklearn.datasets import load_digits

    rows = load_digits().data[:40]
    model = local_model(http, runs["digits-mlp"], tmp_path)
    response = http.post(f"/api/runs/{runs['digits-mlp']}/predict", json={"inputs": rows.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictions"] == model.predict(rows).tolist()
    probabilities = np.asarray(body["probabilities"])
    assert probabilities.shape == (40, 10)
    assert np.allclose(probabilities, model.predict_proba(rows), atol=1e-5)
    checkpoints = http.get(f"/api/runs/{runs['digits-mlp']}/checkpoints").json()
    assert body["checkpoint"] == next(c["id"] for c in checkpoints if c["is_best"])


def test_predict_on_an_uploaded_csv_takes_raw_rows_as_load_model_does(
    http: httpx.Client, runs: dict[str, int], tmp_path: Path
) -> None:
    rows = [
        {"age": 25, "income": 40000, "city": "paris", "plan": "pro"},
        {"age": "61", "income": "72000", "city": "lyon", "plan": "basic"},  # numbers as text
        {"age": 33, "income": None, "city": "nice", "plan": "basic"},  # a missing value
        {"age": 47, "income": "", "city": "berlin", "plan": "pro"},  # an unseen city
    ]
    model = local_model(http, runs["churn-mlp"], tmp_path)
    url = f"/api/runs/{runs['churn-mlp']}/predict"
    response = http.post(url, json={"inputs": rows, "checkpoint": "latest"})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == model.predict(rows).tolist()
    assert set(response.json()["predictions"]) <= {"yes", "no"}
    as_lists = [[25, 40000, "paris", "pro"]]
    assert http.post(url, json={"inputs": as_lists}).json()["predictions"] == [
        model.predict(rows[:1])[0]
    ]


@pytest.mark.parametrize(
    ("run", "inputs", "named"),
    [
        ("digits-mlp", [[1, 2, 3]], "inputs[0] has 3 values; an image of 1x8x8 pixels has 64"),
        ("digits-mlp", [[0] * 63 + ["x"]], "inputs[0] has 'x' where a number belongs"),
        ("digits-mlp", [[0] * 64, [True] * 64], "inputs[1] has True where a number belongs"),
        ("digits-mlp", [[0] * 64] * 301, "inputs has 301 rows; at most 300"),
        ("digits-mlp", [], "inputs must be a non-empty list"),
        ("iris-linear", [[1, 2, 3, 4, 5]], "inputs[0] has 5 values; a row of this data set has 4"),
        ("sequences-transformer", [[0] * 8 + [2]], "not an integer in [0, 2)"),
        ("churn-mlp", [{"age": 1, "income": 2, "city": "x", "plan": "y", "zip": 1}], "'zip'"),
        ("churn-mlp", [{"age": 1, "income": 2, "city": "x"}], "lacks column 'plan'"),
        ("churn-mlp", [{"age": "old", "income": 2, "city": "x", "plan": "y"}], "'old', not a"),
        ("churn-mlp", [[1, 2, "x"]], "inputs[0] has 3 values; rows have 4 columns"),
        ("churn-mlp", ["age=1"], "must be an object keyed by column name"),
    ],
)
def test_bad_inputs_get_422_naming_the_problem(
    http: httpx.Client, runs: dict[str, int], run: str, inputs: list, named: str
) -> None:
    response = http.post(f"/api/runs/{runs[run]}/predict", json={"inputs": inputs})
    assert response.status_code == 422, response.text
    assert named in response.json()["detail"]


def test_predict_and_export_refuse_what_they_cannot_find(
    http: httpx.Client, runs: dict[str, int]
) -> None:
    run_id = runs["iris-linear"]
    missing = http.post(
        f"/api/runs/{run_id}/predict", json={"inputs": [[1]], "checkpoint": "epoch-0099"}
    )
    assert missing.status_code == 404 and "no checkpoint 'epoch-0099'" in missing.text
    bad_id = http.get(f"/api/runs/{run_id}/checkpoints/..%2F..%2Fx/export?format=onnx")
    assert bad_id.status_code in (404, 422)
    assert http.post("/api/runs/99999/predict", json={"inputs": [[1]]}).status_code == 404
    extra = http.post(f"/api/runs/{run_id}/predict", json={"inputs": [[1]], "rows": 1})
    assert extra.status_code == 422


def test_the_leaderboard_ranks_checkpoints_across_runs(
    http: httpx.Client, runs: dict[str, int]
) -> None:
    board = http.get("/api/checkpoints", params={"order_by": "val_loss", "mode": "min"}).json()
    values = [row["value"] for row in board]
    assert values == sorted(values) and len(board) == len(SPECS)  # one per run, default 10
    assert {row["run_id"] for row in board} == set(runs.values())
    by_name = {row["run_name"]: row for row in board}
    assert by_name["digits-cnn"]["dataset"] == "digits" and by_name["digits-cnn"]["model"] == "cnn"
    top = http.get(
        "/api/checkpoints", params={"order_by": "val_accuracy", "mode": "max", "limit": 3}
    ).json()
    assert len(top) == 3 and [r["value"] for r in top] == sorted(
        (r["value"] for r in top), reverse=True
    )
    every = http.get("/api/checkpoints", params={"per_run": "false", "limit": 100}).json()
    assert len(every) > len(board)  # the 2-epoch runs keep two checkpoints
    bad = http.get("/api/checkpoints", params={"order_by": "val_loss'; --"})
    assert bad.status_code == 422 and "order_by" in bad.text


def test_an_alias_follows_its_checkpoint(http: httpx.Client, runs: dict[str, int]) -> None:
    mlp, cnn = runs["digits-mlp"], runs["digits-cnn"]
    row = [[0] * 20 + [16] * 24 + [0] * 20]
    put = http.put("/api/aliases/production", json={"run_id": mlp, "checkpoint_id": "best"})
    assert put.status_code == 200, put.text
    assert (
        http.post("/api/aliases/production/predict", json={"inputs": row}).json()["predictions"]
        == http.post(f"/api/runs/{mlp}/predict", json={"inputs": row}).json()["predictions"]
    )
    http.put("/api/aliases/production", json={"run_id": cnn, "checkpoint_id": "latest"})
    alias = http.get("/api/aliases/production").json()
    assert (alias["run_id"], alias["checkpoint_id"]) == (cnn, "epoch-0001")
    moved = http.post("/api/aliases/production/predict", json={"inputs": row}).json()
    assert (moved["run_id"], moved["checkpoint"]) == (cnn, "epoch-0001")
    file = http.get("/api/aliases/production/download")
    assert file.content == http.get(f"/api/runs/{cnn}/checkpoints/latest").content
    export = http.get("/api/aliases/production/export", params={"format": "pt2"})
    direct = http.get(f"/api/runs/{cnn}/checkpoints/latest/export", params={"format": "pt2"})
    assert export.status_code == direct.status_code == 200, export.text
    assert export.content == direct.content  # the same cached file, whichever came first
    assert "production" in [a["name"] for a in http.get("/api/aliases").json()]
    assert http.get("/api/aliases/staging/export?format=onnx").status_code == 404
    assert http.put("/api/aliases/bad%20name", json={"run_id": cnn}).status_code == 422
    missing = http.put("/api/aliases/x", json={"run_id": cnn, "checkpoint_id": "epoch-0042"})
    assert missing.status_code == 404


def test_trainboard_export_writes_a_verified_file(
    runs: dict[str, int], site: Server, tmp_path: Path
) -> None:
    out = tmp_path / "iris.onnx"
    command = [sys.executable, "-m", "trainboard", "export", str(runs["iris-linear"])]
    done = subprocess.run(
        [*command, "--format", "onnx", "-o", str(out)],
        env=process_env(site.home, site.database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "matches the model on" in done.stdout and out.stat().st_size > 0
    refused = subprocess.run(
        [*command, "--checkpoint", "epoch-0077", "--format", "pt2", "-o", str(out)],
        env=process_env(site.home, site.database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and "no checkpoint 'epoch-0077'" in refused.stderr


@pytest.mark.browser
def test_the_models_page_lists_the_best_and_exports_and_predicts_a_drawn_digit(
    page: Any, site: Server, runs: dict[str, int], http: httpx.Client
) -> None:
    page.goto(f"{site.url}/#/models")
    page.wait_for_selector("#models-table tbody tr[data-run-id]")
    names = page.locator("#models-table tbody tr td:nth-child(2)").all_inner_texts()
    assert set(names) == set(SPECS)  # each run's best, by validation loss

    mlp = page.locator(f"#models-table tr[data-run-id='{runs['digits-mlp']}']")
    mlp.get_by_label("Export format").select_option("pt2")
    with page.expect_download() as download:
        mlp.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename.endswith(".pt2")
    branchy = page.locator(f"#models-table tr[data-run-id='{runs['xor-branchy']}']")
    branchy.get_by_label("Export format").select_option("onnx")
    branchy.get_by_role("button", name="Export").click()
    page.wait_for_selector("text=branches on its inputs' values")

    mlp.get_by_role("button", name="Try it").click()
    stroke = [page.locator(f"[data-pixel='{8 * y + 4}']").bounding_box() for y in range(1, 7)]
    page.mouse.move(stroke[0]["x"] + 10, stroke[0]["y"] + 10)
    page.mouse.down()
    for box in stroke[1:]:
        page.mouse.move(box["x"] + 10, box["y"] + 10, steps=3)
    page.mouse.up()
    drawn = page.eval_on_selector_all(".pixel.on", "cells => cells.map(c => +c.dataset.pixel)")
    assert sorted(drawn) == [8 * y + 4 for y in range(1, 7)]
    page.get_by_role("button", name="Predict").click()
    answer = page.wait_for_selector(".predictions li").inner_text()
    pixels = [16 if i in drawn else 0 for i in range(64)]
    expected = http.post(
        f"/api/runs/{runs['digits-mlp']}/predict", json={"inputs": [pixels]}
    ).json()
    assert answer.startswith(f"Prediction: {expected['predictions'][0]} (")

    page.fill("#alias-name", "from-the-page")
    page.select_option("#alias-target", f"{runs['digits-cnn']}/epoch-0001")
    page.get_by_role("button", name="Point alias").click()
    page.wait_for_selector("#aliases tr[data-alias='from-the-page']")
    alias = http.get("/api/aliases/from-the-page").json()
    assert (alias["run_id"], alias["checkpoint_id"]) == (runs["digits-cnn"], "epoch-0001")
    assert page.js_errors == []


def test_an_external_runs_checkpoint_has_no_spec_to_rebuild_from(
    http: httpx.Client, runs: dict[str, int], tmp_path: Path
) -> None:
    run_id = http.post("/api/runs", json={"kind": "external", "name": "script"}).json()["id"]
    weights = tmp_path / "weights.pt"
    torch.save({"model_state_dict": torch.nn.Linear(2, 2).state_dict(), "epoch": 1}, weights)
    upload = http.post(
        f"/api/runs/{run_id}/checkpoints",
        files={"file": ("weights.pt", weights.read_bytes())},
        data={"epoch": "1"},
    )
    assert upload.status_code == 201, upload.text
    export = http.get(f"/api/runs/{run_id}/checkpoints/latest/export?format=onnx")
    predict = http.post(
        f"/api/runs/{run_id}/predict", json={"inputs": [[1, 2]], "checkpoint": "latest"}
    )
    for response in (export, predict):
        assert response.status_code == 422, response.text
        assert "has no spec, data_info, preprocessing" in response.json()["detail"]
    http.post(f"/api/runs/{run_id}/finish", json={"status": "completed"})


def crafted(state: dict[str, Any], case: str) -> dict[str, Any]:
    """A trainboard checkpoint spoiled one way: a weight of the wrong shape, or a key missing
    from what rebuilds the model, or preprocessing that lacks what taking rows needs."""
    state = {key: dict(value) if isinstance(value, dict) else value for key, value in state.items()}
    if case == "a weight of the wrong shape":
        weights = state["model_state_dict"]
        name = next(k for k, v in weights.items() if v.ndim == 2)
        weights[name] = torch.zeros(3, 3)
    elif case == "no data_info.task":
        del state["data_info"]["task"]
    elif case == "no preprocessing.kind":
        del state["preprocessing"]["kind"]
    else:  # columns preprocessing without its columns
        state["preprocessing"] = {"kind": "columns"}
    return state


CRAFTED = {
    "a weight of the wrong shape": "size mismatch",
    "no data_info.task": "lacks the key 'task'",
    "no preprocessing.kind": "preprocessing has no 'kind'",
    "columns without their names": "lacks the key 'numeric'",
}


def test_a_checkpoint_whose_model_cannot_be_rebuilt_gets_422_naming_why(
    http: httpx.Client, runs: dict[str, int], site: Server, tmp_path: Path
) -> None:
    real = http.get(f"/api/runs/{runs['digits-mlp']}/checkpoints/best").content
    (tmp_path / "real.pt").write_bytes(real)
    state = torch.load(tmp_path / "real.pt", weights_only=True)
    run_id = http.post("/api/runs", json={"kind": "external", "name": "crafted"}).json()["id"]
    row = [[0] * 20 + [16] * 24 + [0] * 20]
    for epoch, (case, expected) in enumerate(CRAFTED.items(), start=1):
        path = tmp_path / f"{epoch}.pt"
        torch.save(crafted(state, case), path)
        upload = http.post(
            f"/api/runs/{run_id}/checkpoints",
            files={"file": (path.name, path.read_bytes())},
            data={"epoch": str(epoch)},
        )
        assert upload.status_code == 201, upload.text
        name = f"epoch-{epoch:04d}"
        alias = http.put("/api/aliases/crafted", json={"run_id": run_id, "checkpoint_id": name})
        assert alias.status_code == 200, alias.text
        answers = {
            "predict": http.post(
                f"/api/runs/{run_id}/predict", json={"inputs": row, "checkpoint": name}
            ),
            "export": http.get(
                f"/api/runs/{run_id}/checkpoints/{name}/export", params={"format": "torchscript"}
            ),
            "alias predict": http.post("/api/aliases/crafted/predict", json={"inputs": row}),
        }
        for what, response in answers.items():
            assert response.status_code == 422, (case, what, response.text)
            assert expected in response.json()["detail"], (case, what, response.text)
    http.delete("/api/aliases/crafted")
    command = [sys.executable, "-m", "trainboard", "export", str(run_id), "--format", "onnx"]
    cli = subprocess.run(
        [*command, "--checkpoint", "epoch-0001", "-o", str(tmp_path / "x.onnx")],
        env=process_env(site.home, site.database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr
    assert "cannot be exported" in cli.stderr and "size mismatch" in cli.stderr
    http.post(f"/api/runs/{run_id}/finish", json={"status": "completed"})


def test_a_cached_export_whose_record_is_spoiled_is_built_again(
    http: httpx.Client, runs: dict[str, int], site: Server, tmp_path: Path
) -> None:
    run_id = runs["iris-linear"]
    url = f"/api/runs/{run_id}/checkpoints/latest/export"
    first = http.get(url, params={"format": "torchscript"})
    assert first.status_code == 200, first.text
    folder = site.home / "runs" / str(run_id) / "exports"
    (record,) = folder.glob("*.torchscript.json")
    (cached,) = folder.glob("*.torchscript.pt")
    good = json.loads(record.read_text())
    assert good["size"] == cached.stat().st_size == len(first.content)
    spoilers = {
        "a torn record": lambda: record.write_text(record.read_text()[:7]),
        "a record without rows": lambda: record.write_text(
            json.dumps({k: v for k, v in good.items() if k != "rows"})
        ),
        "a file of another size": lambda: cached.write_bytes(cached.read_bytes()[:100]),
    }
    for case, spoil in spoilers.items():
        spoil()
        again = http.get(url, params={"format": "torchscript"})
        assert again.status_code == 200, (case, again.text)
        assert again.headers["x-trainboard-cache"] == "miss", case
        (tmp_path / "again.pt").write_bytes(again.content)
        outputs, meta = run_export("torchscript", tmp_path / "again.pt", torch.zeros(2, 4))
        assert outputs.shape == (2, 3) and meta["run_id"] == run_id, case
        assert json.loads(record.read_text())["size"] == len(again.content), case
        assert (
            http.get(url, params={"format": "torchscript"}).headers["x-trainboard-cache"] == "hit"
        ), case


ODD_INPUTS: list[Any] = [
    [[10**400] * 64],
    [[1e308] * 64],
    [[[[[0]]]] * 64],
    [[None] * 64],
    [{"a": 1}],
    [[]],
    [[0] * 64, "row"],
    [[0.5] * 9],
    [{"age": 10**400, "income": "inf", "city": ["x"], "plan": {"y": 1}}],
    [{"age": "x" * 100_000, "income": 1, "city": None, "plan": None}],
    [{"age": None, "income": None, "city": None, "plan": None}],
    [[True, False, None, "1"]],
    [[0, 1, 2, 3]],
]


@pytest.mark.parametrize("name", SPECS)
def test_odd_inputs_get_an_answer_or_a_422_never_a_500(
    http: httpx.Client, runs: dict[str, int], name: str
) -> None:
    for inputs in ODD_INPUTS:
        response = http.post(f"/api/runs/{runs[name]}/predict", json={"inputs": inputs})
        assert response.status_code in (200, 422), (inputs, response.text)
        if response.status_code == 422:
            assert len(response.text) < 2000  # a sentence, not an echo of the input


@pytest.mark.parametrize("name", ["iris-linear", "diabetes-mlp", "sequences-transformer"])
def test_predict_answers_as_load_model_for_each_kind_of_data(
    http: httpx.Client, runs: dict[str, int], name: str, tmp_path: Path, site: Server
) -> None:
    model = local_model(http, runs[name], tmp_path)
    spec = RunSpec.model_validate(SPECS[name] | {"seed": 1})
    rows = np.asarray(validation_rows(model, spec, uploads_dir=site.home / "uploads"))[:20]
    response = http.post(f"/api/runs/{runs[name]}/predict", json={"inputs": rows.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    if model.info.task == "regression":
        assert "probabilities" not in body or body["probabilities"] is None
        assert np.allclose(body["predictions"], model.predict(rows), rtol=1e-5)
    else:
        assert body["predictions"] == model.predict(rows).tolist()

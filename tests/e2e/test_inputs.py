"""Hostile or impossible input, end to end on SQLite and PostgreSQL: every one is refused with a
422 whose `detail` names the field and says why, never a 500, a runaway allocation, or a run
that is accepted but can never succeed."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import trainboard
from trainboard.db import make_engine, session_scope
from trainboard.models import Worker
from trainboard.store.workers import register_worker
from trainboard.training.data import DataInfo
from trainboard.training.data.tables import TableError, read_csv
from trainboard.training.models import MODELS, build_model
from trainboard.training.spec import ModelSpec, RunSpec

from tests.helpers import Server, tiny_spec

pytestmark = pytest.mark.slow

# tiny_spec's mlp on moons (2 features, 2 classes) with two hidden layers of 20,000:
# (2*20000 + 20000) + (20000*20000 + 20000) + (20000*2 + 2) parameters.
HUGE_MLP_PARAMETERS = 400_120_002
DEFAULT_LIMIT = 100_000_000  # TRAINBOARD_MAX_MODEL_PARAMETERS's default


@pytest.fixture
def http(shared_server: Server) -> httpx.Client:
    with httpx.Client(base_url=shared_server.url, timeout=60) as client:
        yield client


def send(http: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """A JSON request as Python's json module writes it: NaN and Infinity included."""
    return http.request(
        method, path, content=json.dumps(body), headers={"content-type": "application/json"}
    )


def assert_refused(response: httpx.Response, loc: list[Any], *words: str) -> None:
    """A 422 whose detail has an entry at `loc` (or inside it) whose message has every word."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    found = [d for d in detail if d["loc"][: len(loc)] == loc and all(w in d["msg"] for w in words)]
    assert found, detail


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


def external_run(http: httpx.Client) -> int:
    response = http.post("/api/runs", json={"kind": "external", "name": "target"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


# --- 1. model size


def test_a_model_above_the_parameter_limit_is_refused_with_its_count(http: httpx.Client) -> None:
    spec = tiny_spec(model={"name": "mlp", "params": {"hidden_sizes": [20_000, 20_000]}})
    response = http.post("/api/runs", json=spec)
    assert_refused(
        response, ["body", "model", "params"], f"{HUGE_MLP_PARAMETERS:,}", f"{DEFAULT_LIMIT:,}"
    )


@pytest.mark.parametrize(
    ("model", "dataset", "bound"),
    [
        ({"name": "mlp", "params": {"hidden_sizes": [100_000, 100_000]}}, "moons", "65536"),
        ({"name": "cnn", "params": {"channels": [5_000]}}, "digits", "4096"),
    ],
)
def test_option_values_have_maxima(
    http: httpx.Client, model: dict, dataset: str, bound: str
) -> None:
    response = http.post("/api/runs", json=tiny_spec(model=model, dataset={"name": dataset}))
    assert_refused(response, ["body", "job", "model"], "less than or equal to", bound)


def test_every_built_in_model_is_counted_on_the_meta_device_as_built() -> None:
    from trainboard.training.models import model_outline

    tabular = DataInfo("classification", "tabular", (4,), 3)
    image = DataInfo("classification", "image", (1, 8, 8), 10)
    tokens = DataInfo("classification", "tokens", (15,), 2, vocab_size=2)
    cases = [
        ("mlp", {"batch_norm": True}, tabular),
        ("linear", {}, tabular),
        ("tiny_mlp", {}, tabular),
        ("branchy", {}, tabular),
        ("cnn", {}, image),
        ("transformer", {"positional": "learned"}, tokens),
        ("transformer", {"positional": "sinusoidal"}, tokens),
    ]
    assert {name for name, _, _ in cases} >= {p.name for p in MODELS}
    for name, params, info in cases:
        spec = ModelSpec(name=name, params=params)
        outline = model_outline(spec, info)
        assert {p.device.type for p in outline.parameters()} == {"meta"}, name
        real = build_model(spec, info)
        count = sum(p.numel() for p in real.parameters())
        assert sum(p.numel() for p in outline.parameters()) == count, name


def test_the_size_check_names_the_count_and_the_limit() -> None:
    from trainboard.training.models import ModelTooLarge, check_model_size

    spec = ModelSpec(name="mlp", params={"hidden_sizes": [8]})
    info = DataInfo("classification", "tabular", (4,), 3)  # (4*8 + 8) + (8*3 + 3) = 67
    outline = check_model_size(spec, info, max_parameters=67)
    assert sum(p.numel() for p in outline.parameters()) == 67
    with pytest.raises(ModelTooLarge, match="67 parameters; at most 66"):
        check_model_size(spec, info, max_parameters=66)


def test_load_model_refuses_a_checkpoint_of_a_model_above_the_limit(tmp_path: Path) -> None:
    spec = RunSpec.model_validate(
        tiny_spec(model={"name": "mlp", "params": {"hidden_sizes": [20_000, 20_000]}})
    )
    path = tmp_path / "forged.pt"
    torch.save(
        {
            "epoch": 1,
            "model_state_dict": {},
            "optimizer_state_dict": {},
            "loss": 0.0,
            "spec": spec.model_dump(mode="json"),
            "data_info": DataInfo("classification", "tabular", (2,), 2).to_dict(),
            "preprocessing": {"kind": "tokens", "vocab_size": 2},
        },
        path,
    )
    with pytest.raises(ValueError, match=f"{HUGE_MLP_PARAMETERS:,} parameters.*{DEFAULT_LIMIT:,}"):
        trainboard.load_model(path)


# --- 2. non-finite numbers, NUL characters, deep or huge JSON

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("change", "loc", "why"),
    [
        ({"optimizer": {"lr": NAN}}, ["optimizer", "lr"], "finite number"),
        ({"grad_clip_norm": INF}, ["grad_clip_norm"], "finite number"),
        (
            {"dataset": {"name": "moons", "val_fraction": NAN}},
            ["dataset", "val_fraction"],
            "finite",
        ),
        ({"early_stopping": {"min_delta": INF}}, ["early_stopping", "min_delta"], "finite"),
        (
            {"optimizer": {"param_groups": [{"match": "classifier.*", "lr_scale": NAN}]}},
            ["optimizer", "param_groups", 0, "lr_scale"],
            "finite",
        ),
        (
            {"model": {"name": "mlp", "params": {"hidden_sizes": [16], "dropout": NAN}}},
            ["model", "params"],
            "dropout: NaN",
        ),
        (
            {"dataset": {"name": "moons", "params": {"noise": INF}}},
            ["dataset", "params"],
            "noise: Infinity",
        ),
        ({"optimizer": {"params": {"eps": -INF}}}, ["optimizer", "params"], "eps: -Infinity"),
        (
            {"scheduler": {"name": "step", "params": {"gamma": NAN}}},
            ["scheduler", "params"],
            "finite",
        ),
    ],
)
def test_non_finite_numbers_in_a_spec_are_refused(
    http: httpx.Client, change: dict, loc: list, why: str
) -> None:
    response = send(http, "POST", "/api/runs", tiny_spec() | change)
    assert_refused(response, ["body", "job", *loc], why)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"lr": NAN}, "lr: NaN"),
        ({"a": [1, {"b": INF}]}, "a[1].b: Infinity"),
        ({"k\u0000": 1}, "NUL"),
        ({"k": "v\u0000"}, "k: "),
        ({"k": {"deep": ["\u0000"]}}, "k.deep[0]"),
        (nested(500), "deeper than 32"),
        (nested(33), "deeper than 32"),
        ({f"k{i}": i for i in range(20_000)}, "more than 10,000"),
    ],
)
def test_bad_external_run_params_are_refused(http: httpx.Client, params: dict, why: str) -> None:
    response = send(http, "POST", "/api/runs", {"kind": "external", "params": params})
    assert_refused(response, ["body", "external", "params"], why)


def test_params_within_the_bounds_are_stored_as_sent(http: httpx.Client) -> None:
    params = {"lr": 1e-3, "layers": [64, 32], "deep": nested(31), "note": "é ✓"}
    response = send(http, "POST", "/api/runs", {"kind": "external", "params": params})
    assert response.status_code == 201, response.text
    assert http.get(f"/api/runs/{response.json()['id']}").json()["spec"]["params"] == params


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"name": "a\u0000b"}, ["name"]),
        ({"notes": "x\u0000"}, ["notes"]),
        ({"tags": ["ok", "t\u0000"]}, ["tags", 1]),
        ({"optimizer": {"param_groups": [{"match": "classifier\u0000*"}]}}, ["optimizer"]),
        ({"dataset": {"name": "moons", "params": {"noise\u0000": 0.1}}}, ["dataset", "params"]),
    ],
)
def test_nul_characters_in_a_spec_are_refused(http: httpx.Client, change: dict, loc: list) -> None:
    response = send(http, "POST", "/api/runs", tiny_spec() | change)
    assert_refused(response, ["body", "job", *loc], "NUL")


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"name": "a\u0000b"}, ["name"]),
        ({"notes": "x\u0000"}, ["notes"]),
        ({"tags": ["t\u0000"]}, ["tags", 0]),
    ],
)
def test_nul_characters_in_an_external_run_are_refused(
    http: httpx.Client, change: dict, loc: list
) -> None:
    response = send(http, "POST", "/api/runs", {"kind": "external"} | change)
    assert_refused(response, ["body", "external", *loc], "NUL")


@pytest.mark.parametrize(
    ("method", "suffix", "body", "loc"),
    [
        ("PATCH", "", {"name": "a\u0000"}, ["body", "name"]),
        ("PATCH", "", {"notes": "a\u0000"}, ["body", "notes"]),
        ("PATCH", "", {"tags": ["a\u0000"]}, ["body", "tags", 0]),
        ("POST", "/finish", {"status": "failed", "error": "boom\u0000"}, ["body", "error"]),
    ],
)
def test_nul_characters_in_run_changes_are_refused(
    http: httpx.Client, method: str, suffix: str, body: dict, loc: list
) -> None:
    rid = external_run(http)
    assert_refused(send(http, method, f"/api/runs/{rid}{suffix}", body), loc, "NUL")
    assert http.get(f"/api/runs/{rid}").json()["status"] == "running"  # nothing was changed


@pytest.mark.parametrize("parameter", ["q", "tag"])
def test_nul_characters_in_a_run_search_are_refused(http: httpx.Client, parameter: str) -> None:
    response = http.get("/api/runs", params={parameter: "a\u0000b"})
    assert_refused(response, ["query", parameter], "NUL")


# --- 3. runs that could never succeed


def test_a_cuda_device_no_machine_has_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/runs", json=tiny_spec(device="cuda:99"))
    assert_refused(response, ["body", "device"], "'cuda:99'", "known devices: cpu")
    if torch.cuda.device_count() == 0:
        assert_refused(http.post("/api/runs", json=tiny_spec(device="cuda")), ["body", "device"])


def test_a_registered_worker_makes_its_cuda_devices_known(
    shared_server: Server, http: httpx.Client
) -> None:
    engine = make_engine(shared_server.database_url)
    with session_scope(engine) as session:
        register_worker(session, worker_id="gpu-box", host="gpu-box", pid=1, device="cuda:3")
    try:
        accepted = http.post("/api/runs", json=tiny_spec(device="cuda:3"))
        assert accepted.status_code == 201, accepted.text
        http.post(f"/api/runs/{accepted.json()['id']}/cancel", json={})
        if torch.cuda.device_count() <= 4:
            refused = http.post("/api/runs", json=tiny_spec(device="cuda:4"))
            assert_refused(refused, ["body", "device"], "cuda:0, cuda:1, cuda:2, cuda:3")
    finally:
        with session_scope(engine) as session:
            session.delete(session.get(Worker, "gpu-box"))
        engine.dispose()


def test_a_param_group_that_matches_no_parameter_is_refused(http: httpx.Client) -> None:
    groups = [{"match": "classifier.*", "lr_scale": 10.0}, {"match": "backbone.*"}]
    response = http.post("/api/runs", json=tiny_spec(optimizer={"param_groups": groups}))
    assert_refused(
        response,
        ["body", "optimizer", "param_groups", 1, "match"],
        "'backbone.*' matches no parameter",
        "classifier.weight",
    )
    accepted = http.post("/api/runs", json=tiny_spec(optimizer={"param_groups": groups[:1]}))
    assert accepted.status_code == 201, accepted.text
    http.post(f"/api/runs/{accepted.json()['id']}/cancel", json={})


@pytest.mark.parametrize(
    ("content", "target", "words"),
    [
        ("a,b,label\n1,2,0\ninf,3,1\n2,2,0\n3,1,1\n", "label", ["column 'a'", "line 3", "'inf'"]),
        ("a,y\n1,0.5\n2,1.5\n3,-Infinity\n4,2.5\n", "y", ["column 'y'", "line 4"]),
        ("a,y\n1,0.5\n2,1e999\n3,2.5\n", "y", ["column 'y'", "line 3"]),
        ("a,y\n1,0\n2,nan\n3,1\n4,0\n", "y", ["column 'y'", "line 3"]),
        ("a,y\n1,0.5\n2,1e300\n3,2.5\n", "y", ["column 'y'", "line 3", "32-bit"]),
    ],
)
def test_a_csv_with_non_finite_values_is_refused_with_column_and_line(
    http: httpx.Client, content: str, target: str, words: list[str]
) -> None:
    response = http.post(
        "/api/datasets",
        files={"file": ("numbers.csv", content.encode())},
        data={"target": target, "name": "numbers"},
    )
    assert_refused(response, ["body", "file"], *words)


def test_missing_feature_cells_stay_missing_values_not_errors() -> None:
    table = read_csv(b"a,b,y\n1,,0\nnan,2,1\nNA,3,0\n", max_columns=10)
    assert table.rows == 3 and math.isnan(table.data["a"][1]) and math.isnan(table.data["b"][0])
    with pytest.raises(TableError, match=r"column 'b'.*line 4"):
        read_csv(b"a,b,y\n1,1,0\n2,2,1\n3,-inf,0\n", max_columns=10)


# --- the bounds in the published schemas


def test_the_bounds_are_published_in_the_catalog_and_openapi(http: httpx.Client) -> None:
    models = {m["name"]: m["params"] for m in http.get("/api/catalog").json()["models"]}
    assert models["mlp"]["properties"]["hidden_sizes"]["items"]["maximum"] == 65536
    assert models["cnn"]["properties"]["channels"]["items"]["maximum"] == 4096
    schemas = http.get("/openapi.json").json()["components"]["schemas"]
    assert "\\u0000" in schemas["RunSpec"]["properties"]["notes"]["pattern"]
    assert "\\u0000" in schemas["RunUpdate"]["properties"]["notes"]["anyOf"][0]["pattern"]

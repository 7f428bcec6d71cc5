"""A sweep's parameter importance through `GET /api/sweeps/{id}/importance` in process: computed
once while the sweep's trials stay as they are, again as soon as another trial finishes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from trainboard.app import create_app
from trainboard.config import Settings
from trainboard.db import make_engine, session_scope
from trainboard.models import RunStatus
from trainboard.store.metrics import add_metrics
from trainboard.store.queue import finish_run
from trainboard.sweeps import study
from trainboard.sweeps.space import SweepCreate

from tests.helpers import finished_sweep_row, finished_trial_run

SPACE = {
    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam"]},
}
REQUEST = SweepCreate.model_validate(
    {
        "name": "importance",
        "base": {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "epochs": 2},
        "space": SPACE,
        "n_trials": 20,
    }
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=tmp_path))) as client:
        yield client


@pytest.fixture
def engine(client: TestClient, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(Settings(home=tmp_path).resolved_database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, dict[str, float]]]:
    """Each computation of importances: how many finished trials it was given, its answer."""
    made: list[tuple[int, dict[str, float]]] = []
    compute = study.importances

    def counted(request: SweepCreate, finished: study.Finished) -> dict[str, float]:
        made.append((len(finished), compute(request, finished)))
        return made[-1][1]

    monkeypatch.setattr(study, "importances", counted)
    return made


def add_trial(engine: Engine, sweep_id: int, number: int, status: RunStatus) -> int:
    """Trial `number` with its val_loss epochs (the lr decides it, sgd a little worse)."""
    params: dict[str, Any] = {
        "optimizer.lr": 10 ** (-4 + 3 * number / 12),
        "optimizer.name": ["sgd", "adam"][number % 2],
    }
    value = abs(math.log10(params["optimizer.lr"]) + 2.5) + 0.1 * (number % 2 == 0)
    run = finished_trial_run(REQUEST, sweep_id, number, params)
    if status != RunStatus.completed:
        run.status, run.finished_at = status, None
    with session_scope(engine) as session:
        session.add(run)
        session.flush()
        points = [("val_loss", 1, 2 * value, None), ("val_loss", 2, value, None)]
        add_metrics(session, run_id=run.id or 0, points=points)
        return run.id or 0


def test_importance_is_computed_again_only_when_another_trial_finishes(
    client: TestClient, engine: Engine, fits: list[tuple[int, dict[str, float]]]
) -> None:
    with session_scope(engine) as session:
        sweep_id = finished_sweep_row(session, REQUEST)
    for number in range(10):
        add_trial(engine, sweep_id, number, RunStatus.completed)
    url = f"/api/sweeps/{sweep_id}/importance"

    first = client.get(url).json()["importances"]
    assert set(first) == set(SPACE) and [n for n, _ in fits] == [10]
    assert client.get(url).json()["importances"] == first
    assert len(fits) == 1, "an unchanged sweep is not computed again"

    # A trial in training logs an epoch: the finished trials are the same.
    running = add_trial(engine, sweep_id, 10, RunStatus.running)
    assert client.get(url).json()["importances"] == first
    assert len(fits) == 1

    # It finishes: the answer is computed over 11 trials.
    with session_scope(engine) as session:
        finish_run(session, run_id=running, attempt=1, status=RunStatus.completed)
    fresh = client.get(url).json()["importances"]
    assert [n for n, _ in fits] == [10, 11]
    assert fresh == pytest.approx(fits[1][1])
    assert client.get(url).json()["importances"] == fresh
    assert len(fits) == 2


def test_importance_of_a_missing_sweep_is_404(client: TestClient) -> None:
    assert client.get("/api/sweeps/999/importance").status_code == 404

"""Serving's data on SQLite and PostgreSQL: the leaderboard query, model aliases and their
migration; and the LRU that bounds loaded models."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import Engine, inspect
from trainboard.db import SCHEMA_VERSION, init_db, session_scope
from trainboard.serving.cache import LRU
from trainboard.store.aliases import delete_alias, get_alias, list_aliases, set_alias
from trainboard.store.checkpoints import sync_checkpoints
from trainboard.store.errors import NotFound
from trainboard.store.leaderboard import best_checkpoints
from trainboard.store.runs import cancel_run, create_job_run, delete_run
from trainboard.training.checkpoint import CheckpointEntry

from tests.helpers import tiny_run_spec


def run_with_checkpoints(engine: Engine, name: str, losses: list[float | None]) -> int:
    """A run whose epochs 1.. have checkpoints with these val_loss values (None: NaN)."""
    with session_scope(engine) as session:
        run_id = create_job_run(session, spec=tiny_run_spec(name=name)).id
        entries = [
            CheckpointEntry(f"epoch-{i:04d}", i, 5, f"{run_id}{i}", {"val_loss": loss, "acc": i})
            for i, loss in enumerate(losses, start=1)
        ]
        sync_checkpoints(session, run_id=run_id, attempt=None, entries=entries)
    return run_id


def test_the_leaderboard_ranks_checkpoints_across_runs(engine: Engine) -> None:
    a = run_with_checkpoints(engine, "a", [0.5, 0.2, 0.3])
    b = run_with_checkpoints(engine, "b", [0.4, None])
    c = run_with_checkpoints(engine, "c", [0.1])
    with session_scope(engine) as session:
        best = best_checkpoints(session, metric="val_loss", mode="min", limit=10)
        every = best_checkpoints(session, metric="val_loss", mode="min", limit=4, per_run=False)
        most = best_checkpoints(session, metric="acc", mode="max", limit=10)
        absent = best_checkpoints(session, metric="no_such_metric", mode="min", limit=10)
    assert [(r.id, c.name, v) for c, r, v in best] == [
        (c, "epoch-0001", 0.1),
        (a, "epoch-0002", 0.2),
        (b, "epoch-0001", 0.4),
    ]
    assert [(r.id, c.epoch) for c, r, _ in every] == [(c, 1), (a, 2), (a, 3), (b, 1)]
    assert [(r.id, v) for _, r, v in most] == [(a, 3.0), (b, 2.0), (c, 1.0)]
    assert best[0][1].name == "c" and absent == []


def test_a_non_finite_metric_neither_breaks_the_leaderboard_nor_its_ranking(
    engine: Engine,
) -> None:
    run_id = run_with_checkpoints(engine, "steady", [0.5])
    with session_scope(engine) as session:
        diverging = create_job_run(session, spec=tiny_run_spec(name="diverging")).id
        metrics = {"val_loss": 0.3, "grad_norm": math.inf, "train_loss": math.nan}
        entry = CheckpointEntry("epoch-0001", 1, 5, "abc", metrics)
        sync_checkpoints(session, run_id=diverging, attempt=None, entries=[entry])
    with session_scope(engine) as session:
        best = best_checkpoints(session, metric="val_loss", mode="min", limit=10)
        norms = best_checkpoints(session, metric="grad_norm", mode="max", limit=10)
    assert [(r.id, v) for _, r, v in best] == [(diverging, 0.3), (run_id, 0.5)]
    assert best[0][0].metrics == {"val_loss": 0.3, "grad_norm": None, "train_loss": None}
    assert norms == []


def test_a_row_stored_with_infinity_before_sanitising_is_left_out_not_a_failure(
    engine: Engine,
) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's json type refuses Infinity: no such row can exist there")
    good = run_with_checkpoints(engine, "good", [0.4])
    old = run_with_checkpoints(engine, "old", [0.1])
    with engine.begin() as connection:  # as an older version wrote it
        connection.exec_driver_sql(
            'UPDATE checkpoint SET metrics = \'{"val_loss": 0.1, "grad_norm": Infinity}\' '
            f"WHERE run_id = {old}"
        )
    with session_scope(engine) as session:
        best = best_checkpoints(session, metric="val_loss", mode="min", limit=10)
    assert [(r.id, v) for _, r, v in best] == [(good, 0.4)]


def test_an_alias_moves_and_goes_with_its_run(engine: Engine) -> None:
    first = run_with_checkpoints(engine, "first", [0.5, 0.2])
    second = run_with_checkpoints(engine, "second", [0.3])
    with session_scope(engine) as session:
        alias = set_alias(session, name="production", run_id=first, checkpoint_id="latest")
        assert (alias.run_id, alias.checkpoint_name) == (first, "epoch-0002")
    with session_scope(engine) as session:
        set_alias(session, name="production", run_id=second, checkpoint_id="epoch-0001")
        set_alias(session, name="staging", run_id=first, checkpoint_id="epoch-0001")
    with session_scope(engine) as session:
        moved = get_alias(session, name="production")
        assert (moved.run_id, moved.checkpoint_name) == (second, "epoch-0001")
        assert [a.name for a in list_aliases(session)] == ["production", "staging"]
        with pytest.raises(NotFound, match="no checkpoint 'epoch-0009'"):
            set_alias(session, name="x", run_id=first, checkpoint_id="epoch-0009")
        with pytest.raises(NotFound, match="run 999 does not exist"):
            set_alias(session, name="x", run_id=999, checkpoint_id="best")
    with session_scope(engine) as session:
        cancel_run(session, run_id=first)
        delete_run(session, run_id=first)
    with session_scope(engine) as session:
        assert [a.name for a in list_aliases(session)] == ["production"]  # staging went too
        delete_alias(session, name="production")
    with session_scope(engine) as session, pytest.raises(NotFound, match="no alias"):
        get_alias(session, name="production")


def test_a_version_5_database_gains_the_alias_table(engine: Engine) -> None:
    run_id = run_with_checkpoints(engine, "old", [0.1])
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE model_alias")
        connection.exec_driver_sql("UPDATE schema_version SET version = 5")
    engine.dispose()
    assert "model_alias" not in inspect(engine).get_table_names()
    assert init_db(engine) == SCHEMA_VERSION
    with session_scope(engine) as session:
        set_alias(session, name="production", run_id=run_id, checkpoint_id="latest")
    with session_scope(engine) as session:
        assert get_alias(session, name="production").checkpoint_name == "epoch-0001"


def test_the_lru_keeps_the_most_recently_used() -> None:
    built: list[str] = []
    cache: LRU[str, str] = LRU(2)

    def get(key: str) -> str:
        return cache.get(key, lambda: built.append(key) or key.upper())

    assert [get("a"), get("b"), get("a"), get("c")] == ["A", "B", "A", "C"]
    assert cache.keys() == ["a", "c"]  # b was the least recently used
    get("b")
    assert built == ["a", "b", "c", "b"]

"""The store on SQLite and PostgreSQL: upserts, downsampling, the attempt guard, the queue."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from trainboard.db import SCHEMA_VERSION, init_db, session_scope
from trainboard.models import RunKind, RunStatus
from trainboard.store import queue
from trainboard.store.checkpoints import find_checkpoint, sync_checkpoints
from trainboard.store.errors import Conflict, NotFound
from trainboard.store.metrics import add_metrics, points_since, read_series
from trainboard.store.runs import (
    cancel_run,
    create_job_run,
    delete_run,
    get_run,
    list_runs,
    resume_run,
    set_disk_bytes,
)
from trainboard.training.checkpoint import CheckpointEntry

from tests.helpers import tiny_run_spec


def new_run(engine: Engine, **spec: object) -> int:
    with session_scope(engine) as session:
        return create_job_run(session, spec=tiny_run_spec(**spec)).id


def claim(engine: Engine, worker: str = "w1", lease: float = 30.0) -> tuple[int, int] | None:
    with session_scope(engine) as session:
        return queue.claim_next_run(session, worker_id=worker, device="cpu", lease_seconds=lease)


def test_schema_is_created_once_and_init_is_idempotent(engine: Engine) -> None:
    assert init_db(engine) == SCHEMA_VERSION
    assert init_db(engine) == SCHEMA_VERSION


def test_writing_the_same_point_again_replaces_it(engine: Engine) -> None:
    run_id = new_run(engine)
    with session_scope(engine) as session:
        add_metrics(session, run_id=run_id, points=[("loss", 1, 0.9, None), ("loss", 2, 0.8, None)])
    with session_scope(engine) as session:
        add_metrics(
            session, run_id=run_id, points=[("loss", 2, 0.7, None), ("loss", 3, float("nan"), None)]
        )
    with session_scope(engine) as session:
        series = read_series(session, run_id=run_id, keys=["loss"], max_points=100)["loss"]
        fresh = points_since(session, run_id=run_id, after_seq=2, limit=10)
    assert series.steps == [1, 2, 3]
    assert series.values == [0.9, 0.7, None]  # replaced, and NaN comes back as null
    assert [(k, s) for k, s, *_ in fresh] == [("loss", 2), ("loss", 3)]  # a replaced point is news


def test_downsampling_keeps_first_last_min_max_and_nan_of_every_bucket(engine: Engine) -> None:
    run_id = new_run(engine)
    n = 20_000
    values = [math.sin(i / 500) for i in range(n)]
    values[12_345] = 50.0  # a spike
    values[777] = -50.0  # a dip
    values[4_321] = float("nan")
    with session_scope(engine) as session:
        add_metrics(
            session, run_id=run_id, points=[("loss", i, v, 1.0) for i, v in enumerate(values)]
        )
    with session_scope(engine) as session:
        series = read_series(session, run_id=run_id, keys=["loss"], max_points=500)["loss"]
        zoomed = read_series(
            session, run_id=run_id, keys=["loss"], max_points=500, x_min=12_300, x_max=12_400
        )["loss"]
    assert len(series.steps) <= 500
    assert series.steps[0] == 0 and series.steps[-1] == n - 1
    assert 12_345 in series.steps and 777 in series.steps and 4_321 in series.steps
    assert max(v for v in series.values if v is not None) == 50.0
    assert min(v for v in series.values if v is not None) == -50.0
    assert series.values[series.steps.index(4_321)] is None
    assert series.steps == sorted(series.steps)
    assert zoomed.steps == list(range(12_300, 12_401))  # a zoomed range comes back whole


def test_a_write_from_a_replaced_attempt_is_refused(engine: Engine) -> None:
    run_id = new_run(engine, max_retries=1)
    assert claim(engine, lease=30) == (run_id, 1)
    with session_scope(engine) as session:  # as if its worker had died and the lease ran out
        assert queue.recover_expired_runs(session, now=time.time() + 60) == [(run_id, "requeued")]
    assert claim(engine, "w2") == (run_id, 2)
    entry = CheckpointEntry("epoch-0001", 1, 10, "abc", {})
    with session_scope(engine) as session:
        assert (
            add_metrics(session, run_id=run_id, attempt=1, points=[("loss", 1, 9.0, None)]) is False
        )
        assert (
            queue.report_progress(
                session, run_id=run_id, attempt=1, epoch=1, eta_seconds=1, summary={}
            )
            is False
        )
        assert sync_checkpoints(session, run_id=run_id, attempt=1, entries=[entry]) is False
        assert (
            queue.finish_run(session, run_id=run_id, attempt=1, status=RunStatus.completed) is False
        )
        assert queue.renew_lease(session, run_id=run_id, attempt=1, lease_seconds=30) is None
        assert (
            add_metrics(session, run_id=run_id, attempt=2, points=[("loss", 1, 1.0, None)]) is True
        )
    with session_scope(engine) as session:
        run = get_run(session, run_id=run_id)
        assert (run.status, run.attempt, run.worker) == ("running", 2, "w2")
        assert read_series(session, run_id=run_id, keys=["loss"], max_points=10)["loss"].values == [
            1.0
        ]


def test_a_pending_cancel_wins_over_recovery(engine: Engine) -> None:
    run_id = new_run(engine, max_retries=3)
    claim(engine, lease=30)
    with session_scope(engine) as session:
        cancel_run(session, run_id=run_id)  # asked while running: the worker stops at a step
    with session_scope(engine) as session:  # ... but it died first, and its lease runs out
        assert queue.recover_expired_runs(session, now=time.time() + 60) == [(run_id, "cancelled")]
        run = get_run(session, run_id=run_id)
    assert (run.status, run.finished_at is not None) == ("cancelled", True)
    assert claim(engine, "w2") is None  # never trained again


def test_deleted_run_ids_are_never_given_again(engine: Engine) -> None:
    first = new_run(engine)
    second = new_run(engine)
    with session_scope(engine) as session:
        cancel_run(session, run_id=second)
        delete_run(session, run_id=second)
    assert new_run(engine) == second + 1 > first


def test_a_lost_run_past_its_retries_fails_saying_why(engine: Engine) -> None:
    run_id = new_run(engine, max_retries=0)
    claim(engine, lease=30)
    with session_scope(engine) as session:
        assert queue.recover_expired_runs(session, now=time.time() + 10) == []  # still held
        assert queue.recover_expired_runs(session, now=time.time() + 60) == [(run_id, "failed")]
        run = get_run(session, run_id=run_id)
    assert run.status == "failed" and "stopped responding" in run.error


def test_claims_take_priority_then_age_and_never_the_same_run_twice(engine: Engine) -> None:
    low, high, also_low = (
        new_run(engine, priority=0),
        new_run(engine, priority=5),
        new_run(engine, priority=0),
    )
    assert claim(engine) == (high, 1)
    assert claim(engine) == (low, 1)
    ids = [new_run(engine) for _ in range(30)] + [also_low]
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (got := claim(engine, name)) is not None:
            with lock:
                claimed.append(got[0])

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_cancel_resume_delete_follow_the_state_rules(engine: Engine) -> None:
    queued = new_run(engine)
    with session_scope(engine) as session:
        assert cancel_run(session, run_id=queued).status == "cancelled"
    with session_scope(engine) as session, pytest.raises(Conflict, match="already finished"):
        cancel_run(session, run_id=queued)
    with session_scope(engine) as session:
        run = resume_run(session, run_id=queued, epochs=12)
        assert (run.status, run.epochs, run.spec["epochs"]) == ("queued", 12, 12)
    with (
        session_scope(engine) as session,
        pytest.raises(Conflict, match="cancel it before deleting"),
    ):
        delete_run(session, run_id=queued)
    with session_scope(engine) as session:
        cancel_run(session, run_id=queued)
        delete_run(session, run_id=queued)
    with session_scope(engine) as session, pytest.raises(NotFound):
        get_run(session, run_id=queued)


def test_list_filters_by_status_tag_and_text(engine: Engine) -> None:
    a = new_run(engine, name="alpha 100%", tags=["base_line"])
    new_run(engine, name="beta", tags=["baseline"])
    with session_scope(engine) as session:
        cancel_run(session, run_id=a)
        assert [r.id for r in list_runs(session, tag="base_line")[0]] == [a]  # _ is no wildcard
        assert [r.id for r in list_runs(session, q="100%")[0]] == [a]
        assert [r.id for r in list_runs(session, status="cancelled")[0]] == [a]
        assert list_runs(session)[1] == 2


def test_checkpoint_rows_follow_retention_and_aliases_resolve(engine: Engine) -> None:
    run_id = new_run(engine)
    claim(engine)
    entries = [
        CheckpointEntry("epoch-0001", 1, 5, "a", {"val_loss": 0.2}, True),
        CheckpointEntry("epoch-0002", 2, 5, "b", {"val_loss": 0.3}),
    ]
    with session_scope(engine) as session:
        sync_checkpoints(session, run_id=run_id, attempt=1, entries=entries)
    with session_scope(engine) as session:
        sync_checkpoints(
            session,
            run_id=run_id,
            attempt=1,
            entries=[entries[0], CheckpointEntry("epoch-0003", 3, 5, "c", {})],
        )
    with session_scope(engine) as session:
        assert find_checkpoint(session, run_id=run_id, checkpoint_id="latest").name == "epoch-0003"
        assert find_checkpoint(session, run_id=run_id, checkpoint_id="best").name == "epoch-0001"
        with pytest.raises(NotFound):
            find_checkpoint(session, run_id=run_id, checkpoint_id="epoch-0002")


def test_the_pyramid_matches_the_raw_points_after_appends_rewrites_and_gaps(engine: Engine) -> None:
    import random

    from trainboard.store import pyramid

    run_id = new_run(engine)
    rng = random.Random(7)
    truth: dict[int, float | None] = {}
    batches = [
        list(range(0, 3000)),
        list(range(2990, 6000)),  # overlaps: rewrites
        rng.sample(range(0, 6000), 700),  # rewrites anywhere
        list(range(9000, 9100)),  # a gap, then new steps
        list(range(6200, 6300)),
        list(range(6000, 6100)),
        list(range(6100, 6200)),  # new steps filling a hole inside existing parents
    ]
    for steps in batches:
        points = [
            ("loss", s, None if rng.random() < 0.01 else rng.uniform(-5, 5), 1.0) for s in steps
        ]
        for _, s, v, _ in points:
            truth[s] = v
        with session_scope(engine) as session:
            add_metrics(session, run_id=run_id, points=points)
    with session_scope(engine) as session:
        for level in range(1, pyramid.LEVELS + 1):
            width = pyramid.width(level)
            cells = pyramid._read_cells(session, run_id, "loss", level, 0, 10_000 // width + 1)
            expected_buckets = {s // width for s in truth}
            assert set(cells) == expected_buckets, level
            for bucket, cell in cells.items():
                raw = [(s, truth[s], 1.0) for s in truth if s // width == bucket]
                assert cell == pyramid.Cell.of(raw), (level, bucket)


def test_an_older_sqlite_database_migrates_keeping_its_runs_and_metrics(home: Path) -> None:
    from trainboard.db import make_engine

    engine = make_engine(f"sqlite:///{home / 'old.db'}")
    init_db(engine)
    first, second = new_run(engine), new_run(engine)
    with session_scope(engine) as session:
        add_metrics(session, run_id=first, points=[("loss", 1, 0.5, None)])
    # As a version-1 database had it: the run table without AUTOINCREMENT nor disk_bytes.
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE run DROP COLUMN disk_bytes")
        ddl = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name='run'").scalar()
        connection.exec_driver_sql("PRAGMA writable_schema=ON")
        connection.exec_driver_sql(
            "UPDATE sqlite_master SET sql = ? WHERE name = 'run'",
            (ddl.replace(" AUTOINCREMENT", ""),),
        )
        connection.exec_driver_sql("UPDATE schema_version SET version = 1")
    engine.dispose()
    engine = make_engine(f"sqlite:///{home / 'old.db'}")
    assert init_db(engine) == SCHEMA_VERSION
    with session_scope(engine) as session:
        cancel_run(session, run_id=second)
        delete_run(session, run_id=second)
        series = read_series(session, run_id=first, keys=["loss"], max_points=10)["loss"]
    assert series.values == [0.5]
    assert new_run(engine) == second + 1
    with session_scope(engine) as session:
        assert get_run(session, run_id=first).disk_bytes is None  # measured when read
    engine.dispose()


def test_a_version_2_database_gains_run_sizes(engine: Engine) -> None:
    run_id = new_run(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE run DROP COLUMN disk_bytes")
        connection.exec_driver_sql("UPDATE schema_version SET version = 2")
    engine.dispose()
    assert init_db(engine) == SCHEMA_VERSION
    with session_scope(engine) as session:
        set_disk_bytes(session, run_id=run_id, disk_bytes=123)
    with session_scope(engine) as session:
        assert get_run(session, run_id=run_id).disk_bytes == 123


def test_a_version_3_database_gains_check_options(engine: Engine) -> None:
    run_id = new_run(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE run DROP COLUMN options")
        connection.exec_driver_sql("UPDATE schema_version SET version = 3")
    engine.dispose()
    assert init_db(engine) == SCHEMA_VERSION
    with session_scope(engine) as session:
        assert get_run(session, run_id=run_id).options is None
        check_id = create_job_run(
            session,
            spec=tiny_run_spec(),
            kind=RunKind.preflight,
            options={"steps": 50, "seconds": 5.0},
        ).id
    with session_scope(engine) as session:
        assert get_run(session, run_id=check_id).options == {"steps": 50, "seconds": 5.0}
        assert queue.has_work(session)  # a check is work for any worker


def test_an_idle_worker_sees_work_only_when_a_run_is_queued_or_a_lease_ran_out(
    engine: Engine,
) -> None:
    def has_work(now: float | None = None) -> bool:
        with session_scope(engine) as session:
            return queue.has_work(session, now=now)

    assert not has_work()
    run_id = new_run(engine)
    assert has_work()
    assert claim(engine, lease=30) == (run_id, 1)
    assert not has_work()  # running, and its lease holds
    assert has_work(now=time.time() + 60)  # ... until it runs out


def test_a_worker_claims_only_runs_that_fit_its_devices_and_says_why_others_wait(
    engine: Engine,
) -> None:
    from datetime import timedelta

    from trainboard.api.views import offered_devices, queue_reason
    from trainboard.models import utcnow
    from trainboard.store.workers import heartbeat_worker, most_devices, register_worker

    wide = new_run(engine, devices=3, batch_size=30)
    narrow = new_run(engine, devices=2, batch_size=30)
    with session_scope(engine) as session:
        assert not queue.has_work(session, devices=1)  # nothing a one-device worker can take
        assert queue.has_work(session, devices=2)
        assert offered_devices(session) is None  # no worker is running
        run = get_run(session, run_id=wide)
        assert "none is running" in (queue_reason(run, offered_devices(session)) or "")
        register_worker(session, worker_id="two", host="h", pid=1, device="cpu", devices=2)
        register_worker(session, worker_id="gone", host="h", pid=2, device="cpu", devices=8)
        heartbeat_worker(session, worker_id="gone", status="stopped", run_id=None)
    with session_scope(engine) as session:
        # The older, wider run waits; the two-device worker takes the one it fits.
        claimed = queue.claim_next_run(
            session, worker_id="two", device="cpu", lease_seconds=30, devices=2
        )
        assert claimed == (narrow, 1)
        assert offered_devices(session) == 2  # the stopped worker's 8 do not count
        reason = queue_reason(get_run(session, run_id=wide), offered_devices(session))
        assert reason is not None and "3 devices" in reason and "at most 2" in reason
        assert queue_reason(get_run(session, run_id=narrow), 2) is None  # it runs
        assert most_devices(session, seen_since=utcnow() + timedelta(minutes=1)) is None
    with session_scope(engine) as session:
        assert (
            queue.claim_next_run(
                session, worker_id="two", device="cpu", lease_seconds=30, devices=2
            )
            is None
        )
        claimed = queue.claim_next_run(
            session, worker_id="big", device="cpu", lease_seconds=30, devices=4
        )
        assert claimed == (wide, 1)
        assert get_run(session, run_id=wide).devices == 3

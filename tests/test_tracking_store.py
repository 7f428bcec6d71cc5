"""External runs in the store, on SQLite and PostgreSQL: the silent-run deadline, and a finish
that brings the script's final config and summary."""

from __future__ import annotations

import time

from sqlalchemy import Engine
from trainboard.config import Settings
from trainboard.db import session_scope
from trainboard.external_keeper import check_external_runs
from trainboard.models import RunStatus
from trainboard.schemas import ExternalRunCreate
from trainboard.store.external import (
    fail_silent_runs,
    grant_grace,
    log_points,
    reopen_silent_run,
)
from trainboard.store.runs import create_external_run, create_job_run, finish_external_run, get_run

from tests.helpers import tiny_run_spec


def external(engine: Engine, name: str = "script") -> int:
    with session_scope(engine) as session:
        request = ExternalRunCreate(kind="external", name=name, params={"lr": 0.1})
        return int(create_external_run(session, request=request).id)


def test_a_silent_external_run_fails_at_its_deadline_and_a_report_pushes_it(
    engine: Engine,
) -> None:
    quiet, talking = external(engine, "quiet"), external(engine, "talking")
    with session_scope(engine) as session:
        job = int(create_job_run(session, spec=tiny_run_spec()).id)
    now = time.time()
    with session_scope(engine) as session:
        grant_grace(session, deadline=now + 10, all_runs=False)
        assert fail_silent_runs(session, now=now + 5, timeout=10) == []
        log_points(session, run_id=talking, points=[], attempt=None, deadline=now + 30)
    with session_scope(engine) as session:
        assert fail_silent_runs(session, now=now + 11, timeout=10) == [quiet]
    with session_scope(engine) as session:
        failed = get_run(session, run_id=quiet)
        assert failed.status == RunStatus.failed and "stopped reporting" in failed.error
        assert get_run(session, run_id=talking).status == RunStatus.running
        assert get_run(session, run_id=job).status == RunStatus.queued  # the queue's, untouched


def test_after_a_restart_every_running_external_run_gets_a_full_timeout(engine: Engine) -> None:
    run = external(engine)
    with session_scope(engine) as session:
        overdue = time.time() - 100  # long overdue while we were away
        log_points(session, run_id=run, points=[], attempt=None, deadline=overdue)
    settings = Settings(external_timeout=60)
    assert check_external_runs(engine, settings, restarted=True) == []
    with session_scope(engine) as session:
        assert get_run(session, run_id=run).lease_expires_at > time.time() + 50


def test_finish_merges_the_final_config_and_summary(engine: Engine) -> None:
    run = external(engine)
    with session_scope(engine) as session:
        finish_external_run(
            session,
            run_id=run,
            status="completed",
            error=None,
            params={"epochs": 3},
            summary={"best": 0.5},
        )
    with session_scope(engine) as session:
        ended = get_run(session, run_id=run)
    assert ended.spec["params"] == {"lr": 0.1, "epochs": 3} and ended.summary == {"best": 0.5}


def test_a_run_failed_for_silence_reopens_when_its_script_reports_again(engine: Engine) -> None:
    silent, ended = external(engine, "silent"), external(engine, "ended")
    now = time.time()
    with session_scope(engine) as session:
        log_points(session, run_id=silent, points=[], attempt=None, deadline=now - 1)
        assert fail_silent_runs(session, now=now, timeout=10) == [silent]
        finish_external_run(session, run_id=ended, status="failed", error="boom")
    with session_scope(engine) as session:
        assert reopen_silent_run(session, run_id=silent, deadline=now + 10)
        assert not reopen_silent_run(session, run_id=ended, deadline=now + 10)  # its own end
    with session_scope(engine) as session:
        back = get_run(session, run_id=silent)
        assert back.status == RunStatus.running and back.error is None and back.finished_at is None
        assert get_run(session, run_id=ended).status == RunStatus.failed

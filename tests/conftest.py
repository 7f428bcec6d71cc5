"""Fixtures: temporary homes, databases (SQLite and PostgreSQL), real servers, workers, Chromium."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.helpers import Server, WorkerProcess

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
PG_USERS = ("postgres", "root")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA; this machine has no GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def _postgres_admin_url() -> str | None:
    for user in PG_USERS:
        url = f"postgresql+psycopg://{user}@127.0.0.1:5432/test"
        try:
            engine = create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
            return url
        except Exception:
            continue
    return None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = _postgres_admin_url()
    if url is None:
        message = (
            "PostgreSQL is not reachable on 127.0.0.1:5432 "
            "(database 'test', user postgres or root, trust auth)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def fresh_database(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'trainboard.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    schema = f"tb_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{admin}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, home: Path) -> Iterator[str]:
    with fresh_database(request.param, home, request) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASES)
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real server (no workers) for a whole module, on each database."""
    home = tmp_path_factory.mktemp("shared-home")
    with fresh_database(request.param, home, request) as url:
        server = Server(
            home, url, env_extra={"TRAINBOARD_MAX_BODY_BYTES": str(2 * 1024 * 1024)}
        ).start()
        yield server
        server.stop()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    from trainboard.db import init_db, make_engine

    engine = make_engine(database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def start_server(home: Path, database_url: str) -> Iterator[object]:
    """Factory: start a real `trainboard serve` (stopped at teardown)."""
    servers: list[Server] = []

    def start(workers: int = 0, **env: str) -> Server:
        server = Server(home, database_url, workers=workers, env_extra=env).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def start_worker(home: Path, database_url: str) -> Iterator[object]:
    """Factory: start a real `trainboard worker` process (stopped at teardown)."""
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(home, database_url, env_extra=env).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: object, request: pytest.FixtureRequest) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        page.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"))
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

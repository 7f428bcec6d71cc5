"""The page's speed in headless Chromium against a server whose database this script fills.

- the run page with 6 charts of 10,000 points each, until every chart has drawn its data
- the runs page with 10,000 runs in the database, until the first page of rows shows
- the compare view of 20 runs x 100,000 points each, until every chart has drawn
- a 1,000,000-point series fetched downsampled (bytes on the wire and time)
Prints `name: value unit` lines; the baseline is the same page's time to load with no data.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
from trainboard.db import init_db, make_engine, session_scope  # noqa: E402
from trainboard.models import Run, RunKind, RunStatus  # noqa: E402
from trainboard.schemas import ExternalRunCreate  # noqa: E402
from trainboard.store.metrics import add_metrics  # noqa: E402
from trainboard.store.runs import create_external_run  # noqa: E402

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import Server  # noqa: E402

RUN_KEYS = [
    "train_loss",
    "val_loss",
    "train_accuracy",
    "val_accuracy",
    "grad_norm",
    "lr",
    "samples_per_second",
    "step/train_loss",
]


def fill(url: str) -> dict[str, int]:
    engine = make_engine(url)
    init_db(engine)
    ids: dict[str, int] = {}
    with session_scope(engine) as session:
        detail = create_external_run(
            session, request=ExternalRunCreate(kind="external", name="six charts")
        )
        ids["detail"] = detail.id
    with session_scope(engine) as session:
        add_metrics(
            session,
            run_id=ids["detail"],
            points=[
                (k, s, math.sin(s / 300) + 1.5, 1.0) for k in RUN_KEYS for s in range(1, 10_001)
            ],
        )
    with session_scope(engine) as session:
        big = create_external_run(
            session, request=ExternalRunCreate(kind="external", name="million")
        ).id
        ids["million"] = big
    for start in range(0, 1_000_000, 100_000):
        with session_scope(engine) as session:
            add_metrics(
                session,
                run_id=big,
                points=[
                    ("step/train_loss", s, 1 / (s + 1), 1.0) for s in range(start, start + 100_000)
                ],
            )
    compare = []
    for r in range(20):
        with session_scope(engine) as session:
            rid = create_external_run(
                session, request=ExternalRunCreate(kind="external", name=f"cmp-{r}")
            ).id
        compare.append(rid)
        with session_scope(engine) as session:
            add_metrics(
                session,
                run_id=rid,
                points=[
                    (k, s, (1 + r / 20) / (1 + s / 1000), 1.0)
                    for k in ("val_loss", "train_loss")
                    for s in range(1, 100_001)
                ],
            )
    ids["compare"] = compare  # type: ignore[assignment]
    with session_scope(engine) as session:
        spec = {
            "dataset": {"name": "digits"},
            "model": {"name": "mlp"},
            "optimizer": {"name": "adamw", "lr": 0.001},
        }
        session.add_all(
            [
                Run(
                    name=f"run {i}",
                    kind=RunKind.job,
                    status=RunStatus.completed,
                    spec=spec,
                    epochs=10,
                    epoch=10,
                )
                for i in range(10_000)
            ]
        )
    engine.dispose()
    return ids


def drawn(selector: str, count: int) -> str:
    """A page condition: `count` charts matching `selector` have drawn data."""
    charts = f"[...document.querySelectorAll('{selector}')]"
    return f"{charts}.filter(e => Number(e.dataset.points) > 0).length >= {count}"


def timed(page, url: str, ready: str) -> float:
    page.goto("about:blank")  # a full load each time: nothing left over from the last view
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_function(ready, timeout=60_000)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite:///{home / 'trainboard.db'}"
        started = time.perf_counter()
        ids = fill(url)
        print(f"fill_database: {time.perf_counter() - started:.1f} s")
        server = Server(home, url).start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{server.url}/#/new")  # warm the browser cache for the static files
                page.wait_for_selector("#run-form")
                baseline = statistics.median(
                    timed(page, f"{server.url}/#/compare", "document.querySelector('p.empty')")
                    for _ in range(3)
                )
                charts_ready = drawn("[data-chart] .uplot", 6)
                run_page = statistics.median(
                    timed(page, f"{server.url}/#/run/{ids['detail']}", charts_ready)
                    for _ in range(3)
                )
                runs_page = statistics.median(
                    timed(
                        page,
                        f"{server.url}/#/runs",
                        "document.querySelectorAll('#runs-table tr[data-run-id]').length >= 50",
                    )
                    for _ in range(3)
                )
                scroll_start = time.perf_counter()
                for _ in range(20):
                    page.mouse.wheel(0, 400)
                    page.evaluate("new Promise(r => requestAnimationFrame(() => r()))")
                scroll = (time.perf_counter() - scroll_start) / 20
                compare_ids = ",".join(str(i) for i in ids["compare"])
                compare_ready = drawn("#compare-charts .uplot", 2)
                compare = statistics.median(
                    timed(page, f"{server.url}/#/compare?ids={compare_ids}", compare_ready)
                    for _ in range(3)
                )
                browser.close()
            start = time.perf_counter()
            response = httpx.get(
                f"{server.url}/api/runs/{ids['million']}/metrics",
                params={"max_points": 2000},
                timeout=60,
            )
            fetch = time.perf_counter() - start
            points = len(response.json()["series"]["step/train_loss"]["steps"])
        finally:
            server.stop()
    print(f"empty_page_baseline: {baseline * 1000:.0f} ms")
    print(f"run_page_6x10k_points: {run_page * 1000:.0f} ms")
    print(f"runs_page_10k_runs: {runs_page * 1000:.0f} ms")
    print(f"runs_page_scroll_frame: {scroll * 1000:.1f} ms")
    print(f"compare_20x100k_points: {compare * 1000:.0f} ms")
    print(
        f"fetch_1M_series_downsampled: {fetch * 1000:.0f} ms for {points} points, "
        f"{len(response.content) / 1024:.0f} KiB"
    )
    print(f"run_page_vs_empty_baseline: {run_page / baseline:.1f} x")


if __name__ == "__main__":
    main()

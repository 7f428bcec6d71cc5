"""The sweep page's speed in headless Chromium: a finished sweep of 1,000 trials x 50 epochs,
against the same page for a 10-trial sweep in the same database and the same run.

It fills a SQLite database in a temporary folder (the Sweep row, its trials' Run rows, their
`val_loss`/`train_loss` epochs through the store's `add_metrics`, the Optuna study with the same
finished trials so that the importance endpoint has data), starts `trainboard serve --workers 0`
on it and opens `#/sweep/<id>` afresh, 3 times a sweep (medians). Each time is the page's own
`performance.now()` (ms since the navigation started) at the first frame where it holds:

- first paint: the header, the first page of `#trials-table` and the parallel coordinates
  (drawn, with the first parameter's axis) are in the page: what a person sees first;
- importance: the importance chart's SVG names every parameter of the space;
- curves: the overlaid curves chart has drawn its data (`data-points` > 0) for every trial;
- brush re-filter: once everything is in, an `axisAreaSelect` on a parameter's axis (what a
  drag along it does, through ECharts' dispatchAction, as tests/e2e/test_sweep_page.py does),
  timed until the curves' count (`#curves-count`) has changed (`count_changed`) and until the
  next frame has run (`refilter`); the median of 5 brushes keeping different trials.
Also the server's own times for the sweep's JSON (whole, and without runs as the page reads it),
its importance (the first read, which computes it, then the median of reads the server answers
from what it kept: the page loads come after these) and its trials' curves (httpx, no browser).
Prints `name: value unit` lines and the ratios to the 10-trial baseline.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright
from sqlmodel import update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
from trainboard.db import init_db, make_engine, session_scope  # noqa: E402
from trainboard.models import Sweep  # noqa: E402
from trainboard.store.metrics import add_metrics  # noqa: E402
from trainboard.sweeps.space import SweepCreate  # noqa: E402
from trainboard.sweeps.study import distributions, open_study  # noqa: E402

from tests.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.helpers import Server, finished_sweep_row, finished_trial_run  # noqa: E402

EPOCHS = 50
LOADS = 3  # page loads per sweep; the median is printed
BRUSHES = [(1e-4, 3e-4), (1e-4, 1e-3), (3e-4, 3e-2), (1e-3, 1e-2), (2e-3, 5e-3)]
SPACE: dict[str, Any] = {
    "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "optimizer.weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
    "optimizer.name": {"type": "categorical", "choices": ["sgd", "adam", "adamw"]},
    "batch_size": {"type": "int", "low": 16, "high": 256},
}
BASE = {"dataset": {"name": "digits"}, "model": {"name": "mlp"}, "epochs": EPOCHS}


def curve(params: dict[str, Any], rng: random.Random) -> list[float]:
    """A plausible val_loss by epoch: its floor grows with the lr's distance from 10**-2.5,
    sgd is a little worse, weight decay and batch size matter little."""
    floor = (
        0.08
        + 0.5 * abs(math.log10(params["optimizer.lr"]) + 2.5)
        + (0.15 if params["optimizer.name"] == "sgd" else 0.0)
        + 0.4 * params["optimizer.weight_decay"]
        + 0.0002 * params["batch_size"]
        + rng.gauss(0, 0.02)
    )
    return [floor + (2.3 - floor) * math.exp(-e / 8) + rng.gauss(0, 0.01) for e in range(EPOCHS)]


def fill_sweep(url: str, trials: int, seed: int) -> int:
    """A completed sweep of `trials` trials in the database and in its Optuna study."""
    import optuna

    request = SweepCreate.model_validate(
        {"name": f"{trials} trials", "base": BASE, "space": SPACE, "n_trials": trials}
    )
    engine = make_engine(url)
    init_db(engine)  # safe to call again: the schema is made once
    rng = random.Random(seed)
    with session_scope(engine) as session:
        sweep_id = finished_sweep_row(session, request)
    params = [
        {
            "optimizer.lr": 10 ** rng.uniform(-4, -1),
            "optimizer.weight_decay": rng.uniform(0, 0.1),
            "optimizer.name": rng.choice(["sgd", "adam", "adamw"]),
            "batch_size": rng.randint(16, 256),
        }
        for _ in range(trials)
    ]
    curves = [curve(p, rng) for p in params]
    run_ids: list[int] = []
    for start in range(0, trials, 250):  # a transaction per 250 trials
        with session_scope(engine) as session:
            runs = [
                finished_trial_run(request, sweep_id, n, params[n])
                for n in range(start, min(start + 250, trials))
            ]
            session.add_all(runs)
            session.flush()
            for n, run in zip(range(start, start + len(runs)), runs, strict=True):
                run_ids.append(run.id or 0)
                points = [("val_loss", e + 1, v, None) for e, v in enumerate(curves[n])]
                points += [("train_loss", e + 1, 0.9 * v, None) for e, v in enumerate(curves[n])]
                add_metrics(session, run_id=run.id or 0, points=points)
    values = [min(c) for c in curves]
    ids = range(trials)
    best = min(ids, key=values.__getitem__)
    with session_scope(engine) as session:
        best_of = {"best_value": values[best], "best_params": params[best]}
        session.exec(
            update(Sweep).where(Sweep.id == sweep_id).values(best_run_id=run_ids[best], **best_of)
        )
    # The trials go in through Optuna's API; their epochs' values in one executemany (Optuna's
    # add_trial writes each intermediate value in queries of its own: ~50x slower).
    study = open_study(url, sweep_id, request)
    dists = distributions(request)
    made = optuna.trial.create_trial
    study.add_trials([made(params=params[n], distributions=dists, value=values[n]) for n in ids])
    trial_ids = [t._trial_id for t in study.get_trials(deepcopy=False)]
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO trial_intermediate_values "
            "(trial_id, step, intermediate_value, intermediate_value_type) "
            "VALUES (?, ?, ?, 'FINITE')",
            [
                (t, e + 1, v)
                for t, c in zip(trial_ids, curves, strict=True)
                for e, v in enumerate(c)
            ],
        )
    check = open_study(url, sweep_id, request).trials[-1].intermediate_values
    assert len(check) == EPOCHS, check
    engine.dispose()
    return sweep_id


WATCH = """async ([trials, names]) => {
    const q = (selector) => document.querySelector(selector);
    const svg = (selector) => q(`${selector} svg`)?.textContent || "";
    // Drawn, on an SVG or (many trials) a canvas, with the first parameter's axis.
    const parallel = () => {
        const chart = q("#parallel-chart");
        const drawn = chart?.dataset.drawn && echarts.getInstanceByDom(chart);
        const axes = drawn && drawn.getOption().parallelAxis;
        return Boolean(axes?.some((axis) => axis.name === names[0]));
    };
    const conditions = {
        first_paint: () =>
            q("#sweep-name") && parallel() &&
            document.querySelectorAll("#trials-table tbody tr[data-run-id]").length ===
                Math.min(trials, 100),  // the table's first page (TRIALS_PAGE)
        importance: () => names.every((name) => svg("#importance-chart").includes(name)),
        curves: () =>
            q("#sweep-curves")?.dataset.shown === String(trials) &&
            Number(q("#sweep-curves .uplot")?.dataset.points) > 0,
    };
    const times = {};
    while (Object.keys(times).length < 3 && performance.now() < 120000) {
        await new Promise((r) => requestAnimationFrame(r));
        for (const [key, holds] of Object.entries(conditions)) {
            if (!(key in times) && holds()) times[key] = performance.now();
        }
    }
    return times;
}"""


def load(page: Page, url: str, trials: int) -> dict[str, float]:
    """One fresh load: each condition's first frame, in ms since the navigation started."""
    page.goto("about:blank")  # a full load each time: nothing left over from the last view
    page.goto(url, wait_until="commit")  # watch from before the page's scripts run
    times = page.evaluate(WATCH, [trials, list(SPACE)])
    assert len(times) == 3, f"timed out: only {times} after 120 s"
    return times


BRUSH = """async ([lo, hi]) => {
    const count = document.getElementById("curves-count");
    const before = count.textContent;
    const chart = echarts.getInstanceByDom(document.getElementById("parallel-chart"));
    const start = performance.now();
    chart.dispatchAction({
        type: "axisAreaSelect", parallelAxisId: "param-0", intervals: [[lo, hi]],
    });
    while (count.textContent === before && performance.now() - start < 30000) {
        await new Promise((r) => setTimeout(r, 1));
    }
    const changed = performance.now() - start;
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    return [changed, performance.now() - start];
}"""
CLEAR = """() => echarts.getInstanceByDom(document.getElementById("parallel-chart"))
    .dispatchAction({ type: "axisAreaSelect", parallelAxisId: "param-0", intervals: [] })"""


def brushes(page: Page, trials: int) -> list[list[float]]:
    """Each brush's times (ms) until the curves' count changed, and until the next frame."""
    times = []
    for lo, hi in BRUSHES:
        times.append(page.evaluate(BRUSH, [lo, hi]))
        page.evaluate(CLEAR)
        page.wait_for_function(
            f"document.getElementById('curves-count').textContent == '{trials} trials'"
        )
    return times


def measure(page: Page, base_url: str, sweep_id: int, trials: int) -> dict[str, float]:
    url = f"{base_url}/#/sweep/{sweep_id}"
    loads = [load(page, url, trials) for _ in range(LOADS)]
    out = {key: statistics.median(run[key] for run in loads) for key in loads[0]}
    done = brushes(page, trials)
    out["brush_count"] = statistics.median(t[0] for t in done)
    out["brush"] = statistics.median(t[1] for t in done)
    return out


def server_ms(url: str, sizes: list[int] | None = None) -> float:
    """One GET's time in ms; its body's size goes to `sizes`."""
    start = time.perf_counter()
    response = httpx.get(url, timeout=120).raise_for_status()
    if sizes is not None:
        sizes.append(len(response.content))
    return (time.perf_counter() - start) * 1000


def main() -> None:
    sizes = {"1000_trials": 1000, "10_trials": 10}
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        url = f"sqlite:///{home / 'trainboard.db'}"
        ids: dict[str, int] = {}
        for name, trials in sizes.items():
            started = time.perf_counter()
            ids[name] = fill_sweep(url, trials, seed=trials)
            print(f"fill_sweep_{name}: {time.perf_counter() - started:.1f} s")
        server = Server(home, url).start()
        errors: list[str] = []
        try:
            for name in sizes:  # the server's own times (the first importance opens Optuna)
                api = f"{server.url}/api/sweeps/{ids[name]}"
                body: list[int] = []
                first_importance = server_ms(f"{api}/importance")  # computed, then kept
                results[name] = {
                    "api_importance_first": first_importance,
                    "api_sweep": statistics.median(server_ms(api, body) for _ in range(3)),
                    "api_sweep_kib": body[0] / 1024,
                    "api_importance": statistics.median(
                        server_ms(f"{api}/importance") for _ in range(3)
                    ),
                    "api_page_sweep": statistics.median(
                        server_ms(f"{api}?runs=false") for _ in range(3)
                    ),
                    "api_curves": statistics.median(
                        server_ms(f"{api}/curves?key=val_loss") for _ in range(3)
                    ),
                }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{server.url}/#/sweeps")  # warm the browser cache for static files
                page.wait_for_selector("#sweeps-table")
                for name in reversed(sizes):  # the baseline first
                    results[name] |= measure(page, server.url, ids[name], sizes[name])
                browser.close()
        finally:
            server.stop()
    big, small = results["1000_trials"], results["10_trials"]
    for name, r in results.items():
        print(f"sweep_page_first_paint_{name}: {r['first_paint'] / 1000:.2f} s")
        print(f"sweep_importance_{name}: {r['importance'] / 1000:.2f} s")
        print(f"sweep_curves_drawn_{name}: {r['curves'] / 1000:.2f} s")
        print(f"sweep_brush_refilter_{name}: {r['brush']:.0f} ms")
        print(f"sweep_brush_count_changed_{name}: {r['brush_count']:.0f} ms")
        print(f"api_sweep_json_{name}: {r['api_sweep']:.0f} ms, {r['api_sweep_kib']:.0f} KiB")
        print(f"api_importance_first_{name}: {r['api_importance_first']:.0f} ms")
        print(f"api_importance_{name}: {r['api_importance']:.0f} ms")
        print(f"api_sweep_without_runs_{name}: {r['api_page_sweep']:.0f} ms")
        print(f"api_curves_{name}: {r['api_curves']:.0f} ms")
    for key in ("first_paint", "importance", "curves", "brush"):
        print(f"sweep_{key}_1000_vs_10_trials: {big[key] / small[key]:.1f} x")
    if errors:
        print(f"page_errors: {len(errors)} ({errors[0]})")


if __name__ == "__main__":
    main()

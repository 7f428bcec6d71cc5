"""The sweep pages in a real Chromium against a real server and two workers: start a sweep from
the form and watch its trials arrive and finish, brush a parameter's range in the parallel
coordinates to filter the curves, clone the best trial into the run form, read the parameters'
importance; the form's preset, its field errors, and "Sweep this" on a run's page."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from tests.helpers import Server, finished_sweep_row, finished_trial_run, sqlite_server, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SWEEP_MS = 240_000  # four two-epoch trials, two at a time, on a busy two-core machine
FINAL = {"completed", "failed", "diverged", "cancelled", "pruned"}
XSS = "<img src=x onerror=alert(1)>"
LR_SPACE = {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}
BASE = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "params": {"hidden_sizes": [32]}},
    "optimizer": {"name": "adam", "lr": 0.001},
    "epochs": 2,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with sqlite_server(tmp_path_factory.mktemp("sweep-page-home"), workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def sweep_id(site: Server) -> int:
    """A sweep started through the API (named with markup), left to train while tests run."""
    body = {
        "name": f"{XSS} lr",
        "base": BASE,
        "space": {"optimizer.lr": LR_SPACE},
        "n_trials": 4,
        "parallelism": 2,
        "sampler": "random",
        "pruner": "none",
    }
    response = httpx.post(f"{site.url}/api/sweeps", json=body, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def finished(api: httpx.Client, sid: int) -> dict:
    def over() -> dict | None:
        sweep = api.get(f"/api/sweeps/{sid}").json()
        done = sweep["status"] != "running" and all(t["status"] in FINAL for t in sweep["trials"])
        return sweep if done else None

    return wait_until(over, timeout=SWEEP_MS / 1000, interval=0.5, what=f"sweep {sid} to end")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def shown_curves(page: Any) -> list[str]:
    """The trials whose curve the overlaid chart shows (uPlot greys out a hidden one's label)."""
    labels = page.locator("#sweep-curves .u-legend .u-series:not(.u-off) .u-label")
    return sorted(t for t in labels.all_inner_texts() if t.startswith("trial"))


def test_start_a_sweep_from_the_form_and_watch_its_trials_arrive_and_finish(
    page: Any, site: Server, api: httpx.Client, sweep_id: int
) -> None:
    page.goto(f"{site.url}/#/sweeps")
    page.get_by_role("link", name="New sweep", exact=True).click()
    page.wait_for_selector("#sweep-form")
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.get_by_label("Model", exact=True).select_option("mlp")
    page.get_by_label("Hidden Sizes (comma separated)").fill("32")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Sweep name").fill("lr from the form")
    page.get_by_label("Number of trials").fill("4")
    page.get_by_label("Trials at a time").fill("2")
    page.get_by_label("Sampler").select_option("random")
    row = page.locator(".dimension")
    expect(row).to_have_count(1)
    row.get_by_label("Parameter", exact=True).select_option("optimizer.lr")
    row.get_by_label("Low", exact=True).fill("0.0001")
    row.get_by_label("High", exact=True).fill("0.1")
    row.get_by_label("Log scale", exact=True).check()
    shot(page, "sweep-form")
    page.get_by_role("button", name="Start sweep").click()
    page.wait_for_url("**/#/sweep/*")
    sid = int(page.url.rsplit("/", 1)[1])
    created = api.get(f"/api/sweeps/{sid}").json()
    assert created["space"]["optimizer.lr"] | {"step": None} == LR_SPACE | {"step": None}
    assert (created["sampler"], created["n_trials"], created["parallelism"]) == ("random", 4, 2)
    assert (created["base"]["dataset"]["name"], created["base"]["epochs"]) == ("digits", 2)
    page.evaluate("window.notReloaded = true")

    # Trials arrive and end with no reload; their curves fill in.
    rows = page.locator("#trials-table tbody tr[data-run-id]")
    expect(rows.first).to_be_visible(timeout=SWEEP_MS)
    expect(page.locator("#sweep-header .badge")).to_have_text("completed", timeout=SWEEP_MS)
    expect(rows).to_have_count(4)
    expect(page.locator("#sweep-progress")).to_contain_text("4/4 trials done")
    sweep = finished(api, sid)
    assert page.evaluate("window.notReloaded === true")
    assert sweep["best_run_id"] is not None, sweep
    best = page.locator("#trials-table tr.best")
    expect(best).to_have_count(1)
    assert best.get_attribute("data-run-id") == str(sweep["best_run_id"])
    expect(page.locator("#sweep-curves")).to_have_attribute("data-shown", "4")
    wait_until(
        lambda: (
            page.evaluate("Number(document.querySelector('#sweep-curves .uplot').dataset.points)")
            == 2
        ),
        what="two epochs of curves",
    )
    # Sorted by the objective, the best comes first.
    page.locator("#trials-table th[data-sort=value]").click()
    assert rows.first.get_attribute("data-run-id") == str(sweep["best_run_id"])
    shot(page, "sweep-finished")

    # The sweeps list has it, with its count and best value.
    page.get_by_role("link", name="Sweeps", exact=True).click()
    listed = page.locator(f"#sweeps-table tr[data-sweep-id='{sid}']")
    expect(listed).to_contain_text("lr from the form")
    expect(listed).to_contain_text("4/4")
    assert not page.js_errors


def test_brushing_a_parameter_range_filters_the_curves(
    page: Any, site: Server, api: httpx.Client, sweep_id: int
) -> None:
    sweep = finished(api, sweep_id)
    page.goto(f"{site.url}/#/sweep/{sweep_id}")
    expect(page.locator("#sweep-name")).to_have_text(sweep["name"])  # markup shown as text
    assert page.locator("#sweep-header img").count() == 0
    curves = page.locator("#sweep-curves")
    expect(curves).to_have_attribute("data-shown", "4")
    # A range around the two smallest learning rates.
    by_lr = sorted(sweep["trials"], key=lambda t: t["params"]["optimizer.lr"])
    lrs = [t["params"]["optimizer.lr"] for t in by_lr]
    lo, hi = lrs[0] * 0.99, (lrs[1] + lrs[2]) / 2
    inside = sorted(
        f"trial {t['number']}" for t in by_lr if lo <= t["params"]["optimizer.lr"] <= hi
    )
    assert len(inside) == 2
    # The brush a drag along the lr axis makes, through ECharts' own action.
    page.evaluate(
        """([lo, hi]) => echarts
            .getInstanceByDom(document.getElementById("parallel-chart"))
            .dispatchAction({
                type: "axisAreaSelect", parallelAxisId: "param-0", intervals: [[lo, hi]],
            })""",
        [lo, hi],
    )
    expect(curves).to_have_attribute("data-shown", "2")
    expect(page.locator("#curves-count")).to_contain_text("2 of 4 trials")
    assert shown_curves(page) == inside
    shot(page, "sweep-brushed")
    page.get_by_role("button", name="Clear brushed ranges").click()
    expect(curves).to_have_attribute("data-shown", "4")
    assert len(shown_curves(page)) == 4
    assert not page.js_errors


def test_clone_best_into_the_run_form(
    page: Any, site: Server, api: httpx.Client, sweep_id: int
) -> None:
    sweep = finished(api, sweep_id)
    page.goto(f"{site.url}/#/sweep/{sweep_id}")
    page.get_by_role("button", name="Clone best into the run form").click()
    page.wait_for_selector("#run-form")
    lr = float(page.get_by_label("Learning rate", exact=True).input_value())
    assert lr == pytest.approx(sweep["best_params"]["optimizer.lr"], rel=1e-12)
    assert page.get_by_label("Epochs", exact=True).input_value() == "2"
    assert page.get_by_label("Dataset", exact=True).input_value() == "digits"
    assert not page.js_errors


def test_the_importance_chart_names_the_parameters(
    page: Any, site: Server, api: httpx.Client, sweep_id: int
) -> None:
    finished(api, sweep_id)
    importances = api.get(f"/api/sweeps/{sweep_id}/importance").json()["importances"]
    assert set(importances) == {"optimizer.lr"}, importances
    page.goto(f"{site.url}/#/sweep/{sweep_id}")
    expect(page.locator("#importance-list li")).to_have_count(1)
    expect(page.locator("#importance-list li")).to_contain_text("optimizer.lr")
    chart = page.locator("#importance-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("svg")).to_contain_text("optimizer.lr")
    # The other charts drew too: a slice per parameter, the objective by trial.
    expect(page.locator("#slices [data-chart=slice]")).to_have_count(1)
    expect(page.locator("#objective-chart svg")).to_contain_text("best so far")
    expect(page.locator("#parallel-chart svg")).to_contain_text("optimizer.lr")
    assert not page.js_errors


def test_the_preset_starts_a_grid_of_optimizers_and_cancel_stops_it(
    page: Any, site: Server, api: httpx.Client
) -> None:
    page.goto(f"{site.url}/#/sweeps/new")
    page.wait_for_selector("#sweep-form")
    page.get_by_label("Epochs", exact=True).fill("1")
    page.get_by_role("button", name="SGD+momentum vs Adam vs AdamW (± cosine)").click()
    assert page.get_by_label("Sampler").input_value() == "grid"
    paths = page.locator(".dimension select[aria-label=Parameter]")
    assert [paths.nth(i).input_value() for i in range(paths.count())] == [
        "optimizer.name",
        "scheduler.name",
    ]
    page.get_by_role("button", name="Start sweep").click()
    page.wait_for_url("**/#/sweep/*")
    sid = int(page.url.rsplit("/", 1)[1])
    sweep = api.get(f"/api/sweeps/{sid}").json()
    assert sweep["space"]["optimizer.name"]["choices"] == ["sgd", "adam", "adamw"]
    assert sweep["space"]["scheduler.name"]["choices"] == ["none", "cosine"]
    assert (sweep["sampler"], sweep["n_trials"]) == ("grid", 6)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#sweep-header .badge")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert api.get(f"/api/sweeps/{sid}").json()["status"] == "cancelled"
    assert not page.js_errors


def test_a_bad_range_shows_the_error_next_to_its_row(page: Any, site: Server) -> None:
    page.goto(f"{site.url}/#/sweeps/new")
    page.wait_for_selector("#sweep-form")
    row = page.locator(".dimension").first
    row.get_by_label("Parameter", exact=True).select_option("optimizer.lr")
    row.get_by_label("Low", exact=True).fill("-1")
    row.get_by_label("Log scale", exact=True).check()
    page.get_by_role("button", name="Start sweep").click()
    expect(page.locator("[id='e-space.optimizer.lr']")).to_contain_text("low > 0")
    assert "#/sweeps/new" in page.url


def test_sweep_this_opens_the_form_on_a_runs_spec(
    page: Any, site: Server, api: httpx.Client, sweep_id: int
) -> None:
    sweep = api.get(f"/api/sweeps/{sweep_id}").json()
    run_id = sweep["trials"][0]["run_id"]
    page.goto(f"{site.url}/#/run/{run_id}")
    page.get_by_role("button", name="Sweep this").click()
    page.wait_for_selector("#sweep-form")
    assert page.get_by_label("Epochs", exact=True).input_value() == "2"
    assert page.get_by_label("Hidden Sizes (comma separated)").input_value() == "32"
    expect(page.get_by_role("heading", name=f"New sweep from run {run_id}")).to_be_visible()
    assert not page.js_errors


def test_a_pruned_trial_says_when_and_against_what(page: Any, site: Server) -> None:
    page.goto(f"{site.url}/#/sweeps")
    page.wait_for_selector("#sweeps-table")
    trial = {"params": {"optimizer.lr": 0.01}, "value": 1.5, "status": "pruned"}
    sweep = {
        "space": {"optimizer.lr": LR_SPACE},
        "objective": {"metric": "val_loss", "mode": "min"},
        "best_run_id": 1,
        "trials": [
            trial | {"run_id": 1, "number": 0, "status": "completed", "value": 1.1},
            trial | {"run_id": 2, "number": 1, "pruned_epoch": 2, "pruned_against": 1.25},
        ],
    }
    notes = page.evaluate(
        """async (sweep) => {
            const { trialsTable } = await import("/static/views/sweeptrials.js");
            const table = trialsTable();
            table.render(sweep);
            return [...table.node.querySelectorAll("td.note")].map((td) => td.textContent);
        }""",
        sweep,
    )
    assert notes == ["", "pruned at epoch 2 (1.5 vs median 1.25)"]


def finished_sweep(site: Server, trials: int) -> tuple[int, int]:
    """A completed sweep of `trials` two-epoch trials written straight into the server's
    database (training that many would take minutes); its id and its best run's id."""
    from trainboard.db import make_engine, session_scope
    from trainboard.store.metrics import add_metrics
    from trainboard.sweeps.space import SweepCreate

    request = SweepCreate.model_validate(
        {"name": "many", "base": BASE, "space": {"optimizer.lr": LR_SPACE}, "n_trials": trials}
    )
    engine = make_engine(site.database_url)
    with session_scope(engine) as session:
        sweep_id, best = finished_sweep_row(session, request), (math.inf, 0)
        for n in range(trials):
            params = {"optimizer.lr": 10 ** (-4 + 3 * n / trials)}
            run = finished_trial_run(request, sweep_id, n, params)
            session.add(run)
            session.flush()
            value = 0.5 + abs(n - 77) / trials  # trial 77 is the best
            add_metrics(
                session,
                run_id=run.id or 0,
                points=[("val_loss", 1, 2 * value, None), ("val_loss", 2, value, None)],
            )
            best = min(best, (value, run.id or 0))
    engine.dispose()
    return sweep_id, best[1]


def test_a_sweep_of_many_trials_pages_its_table_and_reads_all_curves_at_once(
    page: Any, site: Server
) -> None:
    sid, best_run = finished_sweep(site, 130)
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/api/" in r.url else None)
    page.goto(f"{site.url}/#/sweep/{sid}")
    rows = page.locator("#trials-table tbody tr[data-run-id]")
    expect(rows).to_have_count(100)
    pager = page.locator("#trials-pager")
    expect(pager).to_contain_text("trials 1\u2013100 of 130")
    pager.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(30)
    expect(rows.first).to_have_attribute("data-number", "100")
    expect(pager.get_by_role("button", name="Next")).to_be_disabled()
    # Sorting goes back to the first page, the best trial first.
    page.locator("#trials-table th[data-sort=value]").click()
    expect(rows).to_have_count(100)
    expect(rows.first).to_have_attribute("data-run-id", str(best_run))
    expect(page.locator("#curves-count")).to_have_text("130 trials")
    assert page.evaluate("document.querySelector('#sweep-curves').dataset.shown") == "130"
    curve_reads = [u for u in reads if "/curves" in u]
    assert len(curve_reads) == 1, curve_reads
    assert not [u for u in reads if "/metrics" in u], "no read per trial"
    assert not page.js_errors

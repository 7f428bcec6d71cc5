"""The learner's views in a real Chromium against a real server and worker: the form's
learning-rate range test and preflight, why a run diverged, the gradient norm per layer, and
charts a learner can read (the compare view's controls and single legend, log-scale lr)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from tests.helpers import Server, sqlite_server, tiny_spec, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_MS = 120_000  # a queued run's wait, training included, on a busy two-core machine
DIVERGING = {
    "name": "diverges",
    "dataset": {"name": "diabetes"},
    "model": {"name": "mlp"},
    "optimizer": {"name": "sgd", "lr": 10},
    "grad_clip_norm": None,
    "epochs": 3,
    "log_every_steps": 1,
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with sqlite_server(tmp_path_factory.mktemp("insight-home")) as server:
        yield server


def submit(api: httpx.Client, spec: dict[str, Any]) -> int:
    response = api.post("/api/runs", json=spec)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_final(api: httpx.Client, rid: int) -> dict:
    final = {"completed", "failed", "diverged", "cancelled", "pruned"}
    return wait_until(
        lambda: (r := api.get(f"/api/runs/{rid}").json())["status"] in final and r,
        timeout=RUN_MS / 1000,
        what=f"run {rid} to end",
    )


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_quick_form(page: Any, site: Server) -> None:
    """The form, set to a spec that trains in about a second: digits, mlp, one epoch."""
    page.goto(f"{site.url}/#/new")
    page.wait_for_selector("#run-form")
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.get_by_label("Model", exact=True).select_option("mlp")
    page.get_by_label("Epochs", exact=True).fill("1")


def panel_run(api: httpx.Client, panel: Any) -> dict:
    """The run a check panel in the form follows (its title links to the run's page)."""
    href = panel.get_by_role("link", name=re.compile(r"^run \d+$")).get_attribute("href")
    return api.get(f"/api/runs/{int(href.rsplit('/', 1)[1])}").json()


def chart_points(page: Any, selector: str) -> int:
    return page.evaluate(
        f"Number(document.querySelector({selector!r})?.dataset.points || 0)",
    )


def test_find_a_learning_rate_from_the_form_and_use_it(
    page: Any, site: Server, api: httpx.Client
) -> None:
    open_quick_form(page, site)
    page.get_by_role("button", name="Find learning rate").click()
    panel = page.locator("#lr-find-result")
    expect(panel.locator("[data-chart=lr_find] .uplot")).to_be_visible(timeout=RUN_MS)
    run = panel_run(api, panel)
    assert (run["kind"], run["status"]) == ("lr_find", "completed"), run
    assert (run["spec"]["dataset"]["name"], run["spec"]["epochs"]) == ("digits", 1)
    summary = run["summary"]
    positive = [lr for lr in summary["lr_find"]["lrs"] if lr > 0]
    assert chart_points(page, "#lr-find-result [data-chart=lr_find] .uplot") == len(positive)
    assert (
        page.locator("#lr-find-result [data-chart=lr_find] .uplot").get_attribute("data-log")
        == "false"
    )  # the y axis: loss; the x axis is the log one
    marks = page.locator("#lr-find-marks").inner_text()
    assert "steepest" in marks and "minimum / 10" in marks
    suggested = summary["suggested_lr"]
    assert suggested is not None, summary  # the digits MLP's loss falls
    shot(page, "lr-find")
    page.get_by_role("button", name="Use this learning rate").click()
    assert float(page.get_by_label("Learning rate", exact=True).input_value()) == suggested
    # The form is still the form: starting the run takes the suggested lr.
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/run/*")
    started = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
    assert started["kind"] == "job" and started["spec"]["optimizer"]["lr"] == suggested
    assert not page.js_errors


def test_the_lr_tests_page_offers_its_suggestion_as_a_prefilled_form(
    page: Any, site: Server, api: httpx.Client
) -> None:
    spec = tiny_spec(name="from the lr test", dataset={"name": "digits"}, epochs=2)
    response = api.post("/api/lr-find", json=spec | {"lr_find": {"steps": 40}})
    assert response.status_code == 201, response.text
    run = wait_final(api, response.json()["id"])
    assert run["status"] == "completed" and run["summary"]["suggested_lr"] is not None, run
    page.goto(f"{site.url}/#/run/{run['id']}")
    expect(page.locator("#check-result [data-chart=lr_find] .uplot")).to_be_visible()
    assert page.locator("#charts [data-chart]").count() == 0  # no ordinary charts for a check
    page.get_by_role("button", name="Use this learning rate").click()
    page.wait_for_selector("#run-form")
    assert page.get_by_label("Name", exact=True).input_value() == "from the lr test"
    assert page.get_by_label("Epochs", exact=True).input_value() == "2"
    lr = float(page.get_by_label("Learning rate", exact=True).input_value())
    assert lr == run["summary"]["suggested_lr"]
    assert not page.js_errors


def test_check_first_shows_a_verdict(page: Any, site: Server, api: httpx.Client) -> None:
    open_quick_form(page, site)
    page.get_by_role("button", name="Check first").click()
    panel = page.locator("#preflight-result")
    expect(panel.locator("#preflight-verdict")).to_have_text("Passed", timeout=RUN_MS)
    run = panel_run(api, panel)
    preflight = run["summary"]["preflight"]
    assert run["kind"] == "preflight" and preflight["passed"] is True, run
    expect(panel).to_contain_text(preflight["message"])
    expect(panel.locator("[data-chart=preflight] .uplot")).to_be_visible()
    expect(panel.locator(".check-facts")).to_contain_text(f"{preflight['steps']} steps")
    shot(page, "preflight")
    assert not page.js_errors


def test_a_check_the_server_refuses_shows_the_error_next_to_its_field(
    page: Any, site: Server
) -> None:
    open_quick_form(page, site)
    page.get_by_label("Learning rate", exact=True).fill("-1")
    page.get_by_role("button", name="Find learning rate").click()
    expect(page.locator("[id='e-optimizer.lr']")).to_contain_text("greater than 0")
    assert page.locator("#lr-find-result").is_hidden()  # no run to follow


def test_a_diverged_run_says_why(page: Any, site: Server, api: httpx.Client) -> None:
    rid = submit(api, DIVERGING)
    # Opened while it trains: the panel comes with the run's end, live.
    page.goto(f"{site.url}/#/run/{rid}")
    panel = page.locator("#diagnosis")
    expect(panel.get_by_role("heading", name="Why it diverged")).to_be_visible(timeout=RUN_MS)
    run = api.get(f"/api/runs/{rid}").json()
    assert run["status"] == "diverged" and run["diagnosis"], run
    diagnosis = run["diagnosis"]
    expect(panel).to_contain_text(diagnosis["where"])
    expect(panel).to_contain_text(f"step {diagnosis['step']}")
    expect(panel.locator(".suggestions li").first).to_have_text(diagnosis["suggestions"][0])
    assert panel.locator(".suggestions li").count() == len(diagnosis["suggestions"])
    shot(page, "diverged")
    # And the same when the page opens on a run that has already diverged.
    page.reload()
    expect(page.locator("#diagnosis")).to_contain_text(diagnosis["suggestions"][0])
    assert not page.js_errors


@pytest.fixture(scope="module")
def trained(site: Server) -> dict:
    """A finished run with per-layer gradient norms and an lr that falls by four decades."""
    spec = tiny_spec(
        name="layers",
        log_every_steps=2,
        scheduler={"name": "step", "params": {"step_size": 1, "gamma": 0.01}},
    )
    with httpx.Client(base_url=site.url, timeout=30) as client:
        run = wait_final(client, submit(client, spec))
        assert run["status"] == "completed", run
        series = client.get(f"/api/runs/{run['id']}/metrics").json()["series"]
    return run | {"series": series}


def test_the_gradient_norm_per_layer_is_a_heatmap_with_a_row_per_parameter(
    page: Any, site: Server, trained: dict
) -> None:
    prefix = "layer_grad_norm/"
    names = [k.removeprefix(prefix) for k in trained["series"] if k.startswith(prefix)]
    assert len(names) >= 2, list(trained["series"])
    page.goto(f"{site.url}/#/run/{trained['id']}")
    section = page.locator("#layer-grads")
    expect(section).to_be_visible()
    labels = section.locator(".heatmap-labels div")
    expect(labels).to_have_count(len(names))
    assert sorted(labels.all_inner_texts()) == sorted(names)
    # The ordinary charts stay the fixed eight: none for a layer's key.
    assert page.locator("#charts [data-chart]").count() == 8
    canvas = section.locator("canvas")
    box = canvas.bounding_box()
    assert box["height"] >= len(names) * 16 - 1  # a row each
    canvas.hover(position={"x": box["width"] - 2, "y": 8})
    readout = section.locator("#layer-grads-readout")
    expect(readout).to_contain_text("step")
    shown = readout.inner_text()
    assert any(shown.startswith(f"{name} · ") for name in names), shown
    shot(page, "layer-grads")
    assert not page.js_errors


def test_a_run_without_layer_norms_shows_no_heatmap(
    page: Any, site: Server, api: httpx.Client
) -> None:
    rid = api.post("/api/runs", json={"kind": "external", "name": "no layers"}).json()["id"]
    points = [{"key": "train_loss", "step": s, "value": 1.0 / s} for s in (1, 2, 3)]
    api.post(f"/api/runs/{rid}/metrics", json={"points": points})
    page.goto(f"{site.url}/#/run/{rid}")
    wait_until(lambda: chart_points(page, "[data-chart=loss] .uplot") == 3, what="the loss chart")
    assert page.locator("#layer-grads").is_hidden()
    # A point that arrives live shows the heatmap, with no reload.
    api.post(
        f"/api/runs/{rid}/metrics",
        json={"points": [{"key": "layer_grad_norm/fc.weight", "step": 10, "value": 0.5}]},
    )
    expect(page.locator("#layer-grads .heatmap-labels div")).to_have_text(["fc.weight"])


def test_the_lr_chart_starts_on_a_log_scale_when_the_lr_spans_decades(
    page: Any, site: Server, trained: dict
) -> None:
    page.goto(f"{site.url}/#/run/{trained['id']}")
    lr_chart = page.locator("[data-chart=lr] .uplot")
    expect(lr_chart).to_have_attribute("data-log", "true")
    expect(page.locator("[data-chart=loss] .uplot")).to_have_attribute("data-log", "false")
    log_box = page.locator("#log-scale")
    assert log_box.evaluate("(box) => box.indeterminate")  # some charts log, some not
    log_box.check()
    expect(page.locator("[data-chart=loss] .uplot")).to_have_attribute("data-log", "true")
    log_box.uncheck()
    expect(page.locator("[data-chart=lr] .uplot")).to_have_attribute("data-log", "false")
    assert not page.js_errors


def test_compare_has_the_run_pages_controls_and_a_single_legend(
    page: Any, site: Server, api: httpx.Client
) -> None:
    a = submit(api, tiny_spec(name="lr-small", optimizer={"name": "adam", "lr": 0.001}))
    b = submit(api, tiny_spec(name="lr-big", optimizer={"name": "adam", "lr": 0.1}))
    wait_final(api, a), wait_final(api, b)
    page.goto(f"{site.url}/#/compare?ids={a},{b}")
    val_loss = page.locator("#compare-charts [data-chart=val_loss] .uplot")
    expect(val_loss).to_be_visible()
    # One legend for every chart, naming each run once.
    expect(page.locator("#compare-legend")).to_have_count(1)
    legend = page.locator("#compare-legend").inner_text()
    assert legend.count("lr-small") == 1 and legend.count("lr-big") == 1
    charts = page.locator("#compare-charts .uplot")
    assert charts.count() >= 3
    for i in range(charts.count()):
        expect(charts.nth(i).locator(".u-legend")).to_be_hidden()
    # Hovering a chart still reads its values.
    val_loss.locator(".u-over").hover()
    tooltip = val_loss.locator(".u-legend")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(re.compile(r"lr-big.*\d\.\d", re.S))
    shot(page, "compare-hover")
    # The run page's controls: smoothing, log scale, x axis.
    smoothing = page.get_by_label("Smoothing")
    expect(smoothing).to_be_visible()
    smoothing.fill("0.9")
    expect(page.locator("#compare-charts [data-chart=lr] .uplot")).to_have_attribute(
        "data-log", "true"
    )  # 0.001 and 0.1: two decades apart
    page.get_by_label("X axis").select_option("elapsed")
    wait_until(
        lambda: chart_points(page, "#compare-charts [data-chart=val_loss] .uplot") >= 3,
        what="the chart over time",
    )
    page.locator("#log-scale").check()
    expect(val_loss).to_have_attribute("data-log", "true")
    assert not page.js_errors

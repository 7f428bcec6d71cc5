"""The web page in a real Chromium against a real server and worker."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from trainboard.models import FINAL_STATUSES, RESUMABLE_STATUSES, RunStatus

from tests.conftest import ARTIFACTS
from tests.helpers import Server, sqlite_server, tiny_spec, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with sqlite_server(tmp_path_factory.mktemp("page-home")) as server:
        yield server


def submit(api: httpx.Client, **overrides: Any) -> int:
    response = api.post("/api/runs", json=tiny_spec(**overrides))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_status(api: httpx.Client, rid: int, statuses: set[str]) -> dict:
    return wait_until(
        lambda: (r := api.get(f"/api/runs/{rid}").json())["status"] in statuses and r,
        timeout=120,
        what=f"run {rid} {statuses}",
    )


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def chart_points(page: Any, chart: str) -> int:
    return page.evaluate(
        f"Number(document.querySelector('[data-chart={chart}] .uplot')?.dataset.points || 0)"
    )


def holds(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Fail as soon as `condition` is false, checking it for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(0.05)


def test_fill_the_form_start_a_run_and_watch_the_loss_chart_grow(
    page: Any, site: Server, api: httpx.Client
) -> None:
    page.goto(f"{site.url}/#/new")
    page.wait_for_selector("#run-form")
    for label in (
        "Dataset",
        "Model",
        "Optimizer",
        "Learning rate",
        "Epochs",
        "Batch size",
        "Scheduler",
        "Gradient clipping",
        "Mixed precision",
        "Seed",
    ):
        assert page.get_by_label(label, exact=True).is_visible(), label
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.get_by_label("Model", exact=True).select_option("cnn")
    page.get_by_label("Model", exact=True).select_option("mlp")  # options rebuilt from the catalog
    assert page.get_by_label("Hidden Sizes (comma separated)").input_value() == "128, 64"
    page.get_by_label("Learning rate", exact=True).fill("0.003")
    page.get_by_label("Epochs", exact=True).fill("12")
    page.get_by_label("Batch size", exact=True).fill("8")
    page.get_by_label("Name", exact=True).fill("from the form")
    shot(page, "new-run-form")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/run/*")
    rid = int(page.url.rsplit("/", 1)[1])
    spec = api.get(f"/api/runs/{rid}").json()["spec"]
    assert (
        spec["dataset"]["name"],
        spec["model"]["name"],
        spec["optimizer"]["lr"],
        spec["epochs"],
    ) == ("digits", "mlp", 0.003, 12)
    # The chart gains points as epochs finish, with no reload.
    seen = wait_until(
        lambda: chart_points(page, "loss") >= 1 and chart_points(page, "loss"),
        timeout=60,
        what="a first point",
    )
    later = wait_until(
        lambda: chart_points(page, "loss") > seen and chart_points(page, "loss"),
        timeout=60,
        what="more points",
    )
    assert later > seen
    page.wait_for_selector("#run-progress:has-text('epoch 12/12')", timeout=120_000)
    assert chart_points(page, "loss") == 12
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # never reloaded
    page.wait_for_selector(".run-meta .badge-completed", timeout=60_000)
    shot(page, "run")
    page.goto(f"{site.url}/#/runs")
    row = page.locator(f"tr[data-run-id='{rid}']")
    row.wait_for()
    assert "from the form" in row.inner_text() and "completed" in row.inner_text()
    shot(page, "runs")
    assert not page.js_errors


def test_download_a_checkpoint_and_load_it_with_weights_only(
    page: Any, site: Server, api: httpx.Client, tmp_path: Path
) -> None:
    rid = submit(api, epochs=2)
    wait_status(api, rid, {"completed"})
    page.goto(f"{site.url}/#/run/{rid}")
    with page.expect_download() as download:
        page.locator("#checkpoints").get_by_role("link", name="Download").last.click()
    path = tmp_path / "downloaded.pt"
    download.value.save_as(path)
    checkpoint = torch.load(path, weights_only=True)
    assert (
        checkpoint["epoch"] == 2
        and "model_state_dict" in checkpoint
        and "optimizer_state_dict" in checkpoint
    )


def test_cancel_a_running_run_from_its_page(page: Any, site: Server, api: httpx.Client) -> None:
    rid = submit(api, epochs=500, dataset={"name": "digits"}, batch_size=4)
    page.goto(f"{site.url}/#/run/{rid}")
    wait_status(api, rid, {"running"})
    page.locator("#cancel-run").click()
    page.wait_for_selector(".run-meta .badge-cancelled", timeout=60_000)
    assert wait_status(api, rid, {"cancelled"})["epoch"] < 500


def test_clone_opens_a_prefilled_form(page: Any, site: Server, api: httpx.Client) -> None:
    rid = submit(api, name="original", epochs=4, optimizer={"name": "sgd", "lr": 0.05})
    wait_status(api, rid, {"completed"})
    page.goto(f"{site.url}/#/run/{rid}")
    page.locator("#clone-run").click()
    page.wait_for_selector("#run-form")
    assert page.get_by_label("Name", exact=True).input_value() == "original (clone)"
    assert page.get_by_label("Epochs", exact=True).input_value() == "4"
    assert page.get_by_label("Optimizer", exact=True).input_value() == "sgd"
    assert page.get_by_label("Learning rate", exact=True).input_value() == "0.05"
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/#/run/*")
    clone = api.get(f"/api/runs/{page.url.rsplit('/', 1)[1]}").json()
    assert clone["spec"]["optimizer"]["lr"] == 0.05 and clone["name"] == "original (clone)"


def test_compare_two_runs_overlays_curves_and_lists_what_differs(
    page: Any, site: Server, api: httpx.Client
) -> None:
    a, b = (
        submit(api, name="lr-small", optimizer={"name": "adam", "lr": 0.001}),
        submit(api, name="lr-big", optimizer={"name": "adam", "lr": 0.05}),
    )
    wait_status(api, a, {"completed"}), wait_status(api, b, {"completed"})
    page.goto(f"{site.url}/#/runs")
    for rid in (a, b):
        page.locator(f"tr[data-run-id='{rid}'] input[type=checkbox]").check()
    page.get_by_role("button", name="Compare selected").click()
    page.wait_for_selector("#compare-charts [data-chart=val_loss] .uplot")
    legend = page.locator("#compare-legend").inner_text()
    assert "lr-small" in legend and "lr-big" in legend
    diff = page.locator("#spec-diff").inner_text()
    assert "optimizer.lr" in diff and "0.001" in diff and "0.05" in diff
    assert "dataset.name" not in diff  # only what differs
    series = page.evaluate(
        "document.querySelectorAll('[data-chart=val_loss] .u-legend .u-series').length"
    )
    assert series == 3  # the x column and one line per run
    shot(page, "compare")


def test_a_bad_learning_rate_shows_the_error_next_to_its_field(page: Any, site: Server) -> None:
    page.goto(f"{site.url}/#/new")
    page.wait_for_selector("#run-form")
    page.get_by_label("Learning rate", exact=True).fill("-1")
    page.get_by_role("button", name="Start run").click()
    error = page.locator("[id='e-optimizer.lr']")
    error.wait_for()
    wait_until(lambda: "greater than 0" in error.inner_text(), timeout=10, what="the field's error")
    assert page.url.endswith("#/new")


def test_a_run_name_with_markup_is_shown_as_text(
    page: Any, site: Server, api: httpx.Client
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    rid = submit(api, name=XSS, notes=XSS, tags=[XSS])
    page.goto(f"{site.url}/#/runs")
    row = page.locator(f"tr[data-run-id='{rid}']")
    row.wait_for()
    assert XSS in row.inner_text()
    assert row.locator("img").count() == 0
    page.goto(f"{site.url}/#/run/{rid}")
    page.wait_for_selector("#run-name")
    assert page.locator("#run-name").inner_text() == XSS
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_a_token_protected_server_asks_once_and_remembers(browser: Any, tmp_path: Path) -> None:
    server = Server(
        tmp_path,
        f"sqlite:///{tmp_path / 'trainboard.db'}",
        env_extra={"TRAINBOARD_TOKEN": "letmein"},
    ).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        page.goto(f"{server.url}/#/runs")
        page.get_by_label("This server needs an access token").fill("letmein")
        page.get_by_role("button", name="Continue").click()
        page.wait_for_selector("#runs-count")
        page.reload()
        page.wait_for_selector("#runs-count")
        assert not page.locator("#token-dialog").is_visible()
        context.close()
    finally:
        server.stop()


def test_narrow_screens_and_empty_states(browser: Any, tmp_path: Path) -> None:
    server = Server(tmp_path, f"sqlite:///{tmp_path / 'trainboard.db'}").start()
    try:
        page = browser.new_page(viewport={"width": 390, "height": 800})
        page.goto(f"{server.url}/#/runs")
        page.wait_for_selector("td.empty")
        assert "No runs yet" in page.locator("td.empty").inner_text()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1  # nothing forces sideways scrolling of the page
        shot(page, "runs-narrow")
        page.close()
    finally:
        server.stop()


def test_zooming_a_chart_refetches_that_range_at_full_detail(
    page: Any, site: Server, api: httpx.Client
) -> None:
    from urllib.parse import parse_qs, urlparse

    rid = api.post("/api/runs", json={"kind": "external", "name": "long curve"}).json()["id"]
    points = [{"key": "step/train_loss", "step": s, "value": 1.0 / s} for s in range(1, 5001)]
    api.post(f"/api/runs/{rid}/metrics", json={"points": points})
    page.goto(f"{site.url}/#/run/{rid}")
    wait_until(lambda: chart_points(page, "step_loss") > 0, timeout=30, what="the step chart")
    assert chart_points(page, "step_loss") <= 2000  # downsampled at first
    box = page.locator("[data-chart=step_loss] .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    with page.expect_request(lambda r: "/metrics" in r.url and "x_min" in r.url) as request:
        page.mouse.move(box["x"] + box["width"] * 0.40, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.45, y, steps=5)
        page.mouse.up()
    query = parse_qs(urlparse(request.value.url).query)
    lo, hi = int(query["x_min"][0]), int(query["x_max"][0])
    expected = len(range(max(lo, 1), min(hi, 5000) + 1))
    assert 0 < expected < 2000
    wait_until(
        lambda: chart_points(page, "step_loss") == expected, timeout=10, what="the zoomed points"
    )
    page.locator("[data-chart=step_loss] .u-over").dblclick()
    wait_until(
        lambda: (
            chart_points(page, "step_loss") <= 2000 and chart_points(page, "step_loss") != expected
        ),
        timeout=10,
        what="the reset",
    )


def test_a_lost_connection_shows_reconnecting_and_resumes(browser: Any, tmp_path: Path) -> None:
    first = Server(tmp_path, f"sqlite:///{tmp_path / 'trainboard.db'}").start()
    page = browser.new_page()
    try:
        with httpx.Client(base_url=first.url) as http:
            rid = http.post("/api/runs", json={"kind": "external", "name": "flaky"}).json()["id"]
            http.post(
                f"/api/runs/{rid}/metrics",
                json={"points": [{"key": "train_loss", "step": 1, "value": 1.0}]},
            )
        page.goto(f"{first.url}/#/run/{rid}")
        wait_until(lambda: chart_points(page, "loss") == 1, timeout=30, what="the first point")
        first.stop()
        page.wait_for_selector("#connection:has-text('reconnecting')", timeout=30_000)
        second = Server(tmp_path, first.database_url, port=first.port).start()
        try:
            with httpx.Client(base_url=second.url) as http:
                http.post(
                    f"/api/runs/{rid}/metrics",
                    json={"points": [{"key": "train_loss", "step": 2, "value": 0.5}]},
                )
            wait_until(
                lambda: chart_points(page, "loss") == 2, timeout=30, what="the point sent after"
            )
            page.wait_for_selector("#connection", state="hidden", timeout=10_000)
        finally:
            second.stop()
    finally:
        page.close()


def test_the_page_knows_the_statuses_the_server_has(page: Any, site: Server) -> None:
    page.goto(f"{site.url}/#/runs")
    page.wait_for_selector("#runs-count")
    statuses = page.evaluate(
        """import("/static/status.js").then((m) => ({
            all: m.STATUSES, final: [...m.FINAL_STATUSES], resumable: [...m.RESUMABLE_STATUSES],
        }))"""
    )
    assert statuses["all"] == [s.value for s in RunStatus]
    assert set(statuses["final"]) == {s.value for s in FINAL_STATUSES}
    assert set(statuses["resumable"]) == {s.value for s in RESUMABLE_STATUSES}
    options = page.locator("#filter-status option").evaluate_all("(os) => os.map((o) => o.value)")
    assert options == ["", *statuses["all"]]


def test_leaving_a_run_page_before_it_has_loaded_leaves_no_live_stream(
    browser: Any, tmp_path: Path
) -> None:
    server = Server(tmp_path, f"sqlite:///{tmp_path / 'trainboard.db'}").start()
    page = browser.new_page()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            rid = http.post("/api/runs", json={"kind": "external", "name": "slow"}).json()["id"]

            def streams() -> int:
                return http.get("/api/health").json()["streams"]

            # Shown, the run page holds one stream; leaving it closes the stream.
            page.goto(f"{server.url}/#/run/{rid}")
            wait_until(lambda: streams() == 1, timeout=30, what="the run page's stream")
            page.evaluate("location.hash = '#/runs'")
            wait_until(lambda: streams() == 0, timeout=30, what="the stream closed on leaving")

            # Now leave while the page's first metrics read is held back, then let it answer.
            held: list[Any] = []
            settled: list[str] = []
            metrics = f"/api/runs/{rid}/metrics"

            def is_metrics(url: str) -> bool:
                return metrics in url

            page.route(is_metrics, lambda route: held.append(route))
            page.on("requestfinished", lambda r: metrics in r.url and settled.append("finished"))
            page.on("requestfailed", lambda r: metrics in r.url and settled.append("failed"))
            page.evaluate(f"location.hash = '#/run/{rid}'")
            # (Playwright calls handlers only while the test waits in Playwright: hence the
            # wait_for_timeout in these conditions.)
            wait_until(
                lambda: page.wait_for_timeout(20) or held, timeout=30, what="the metrics read"
            )
            with page.expect_request(lambda r: "/api/runs?" in r.url):  # the runs view is on
                page.evaluate("location.hash = '#/runs'")
            held[0].continue_()
            wait_until(
                lambda: page.wait_for_timeout(20) or settled, timeout=30, what="the held read"
            )
            # The run view, had it gone on after the read, would open its stream within this.
            holds(
                lambda: page.wait_for_timeout(20) is None and streams() == 0,
                seconds=2,
                what="no open stream",
            )
            assert page.locator("#runs-table").is_visible()  # and the runs page stays
            page.unroute(is_metrics)
    finally:
        page.close()
        server.stop()


# Records where the page draws right-aligned canvas text (uPlot's y-axis tick labels).
RECORD_LABELS = """
window.drawnLabels = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
  if (this.textAlign === "right") {
    const chart = this.canvas.closest("[data-chart]")?.dataset.chart;
    const left = x - this.measureText(text).width;
    window.drawnLabels.push({ chart, text: String(text), left });
  }
  return fillText.call(this, text, x, y, ...rest);
};
"""


def test_y_axis_labels_of_large_values_are_drawn_whole(
    page: Any, site: Server, api: httpx.Client
) -> None:
    rid = api.post("/api/runs", json={"kind": "external", "name": "fast"}).json()["id"]
    values = [1_000.0, 60_000.0, 123_456.0]
    points = [{"key": "samples_per_second", "step": s, "value": v} for s, v in enumerate(values, 1)]
    api.post(f"/api/runs/{rid}/metrics", json={"points": points})
    page.add_init_script(RECORD_LABELS)
    page.goto(f"{site.url}/#/run/{rid}")
    wait_until(lambda: chart_points(page, "throughput") == 3, timeout=30, what="the chart")
    labels = wait_until(
        lambda: page.evaluate("drawnLabels.filter((l) => l.chart === 'throughput')"),
        timeout=10,
        what="the y-axis labels",
    )
    numbers = [int("".join(c for c in label["text"] if c.isdigit()) or 0) for label in labels]
    assert max(numbers) >= 100_000, labels  # six digits and a separator: the case that clipped
    clipped = [label for label in labels if label["left"] < 0]
    assert not clipped, f"labels start left of the chart: {clipped}"
    shot(page, "run-large-values")

"""The dashboard in real headless Chromium: tasks move on the page as their workers report,
without a reload; the form, the buttons and the reconnect behave as an operator expects."""

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
from playwright.async_api import Locator, Page, expect
from redis.asyncio import Redis

from jobcast.model.changes import ReportProgress, RequestCancel, Start
from jobcast.model.principals import Role
from jobcast.model.tasks import TERMINAL, Progress, new_task, utc_now
from jobcast.runtime.network import free_port
from jobcast.settings import Settings
from jobcast.store.stores import open_stores
from jobcast.store.tasks import TaskStore
from jobcast.store.tokens import TokenStore
from tests.conftest import ServedApp
from tests.helpers.api import create_type, submit
from tests.helpers.browser import ARTIFACTS
from tests.helpers.processes import JobcastProcess, start_api

PAGE_SIZE = 50  # rows the dashboard lists per page


async def open_dashboard(page: Page, base_url: str) -> None:
    """Load the page and wait until its WebSocket is live; mark the window to prove no reload."""
    await page.goto(base_url + "/")
    await expect(page.locator("#connection")).to_have_text("live")
    await page.evaluate("window.loadedOnce = true")


async def assert_not_reloaded(page: Page) -> None:
    assert await page.evaluate("window.loadedOnce === true")


def row(page: Page, task_id: str) -> Locator:
    return page.locator(f'tr[data-task-id="{task_id}"]')


async def test_a_task_submitted_from_the_form_reaches_100_percent_and_completed_without_a_reload(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, page: Page
) -> None:
    await open_dashboard(page, app.http_url)
    await page.select_option("#submit-type", "demo.sleep")
    await page.fill('[data-path="/parameters/seconds"]', "3")
    await page.fill('[data-path="/parameters/steps"]', "5")
    await page.click("#submit-form button[type=submit]")
    result = page.locator("#submit-result")
    await expect(result).to_have_text(re.compile(r"^submitted \S+$"))
    task_id = str(await result.text_content()).split()[-1]
    line = row(page, task_id)
    await expect(line.locator(".percent")).to_have_text(re.compile(r"^(20|40|60|80)%$"))
    await expect(line.locator("span.status")).to_have_text("running")
    await expect(line.locator(".percent")).to_have_text("100%")
    await expect(line.locator("span.status")).to_have_text("completed")
    await expect(page.locator("#panel-status")).to_have_text("completed")
    await expect(page.locator("#panel-outcome")).to_contain_text('"slept": 3')
    await expect(page.locator("#panel-timeline li")).to_have_count(
        8
    )  # created, started, 5 progress, completed
    stored = (await http.get(f"/api/tasks/{task_id}")).json()
    assert stored["status"] == "completed"
    assert stored["parameters"] == {"seconds": 3, "steps": 5}
    await assert_not_reloaded(page)


async def test_a_task_submitted_over_http_appears_on_an_open_page_and_finishes_there(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, page: Page
) -> None:
    await open_dashboard(page, app.http_url)
    await expect(page.locator("#workers-count")).to_have_text("1")
    task = await submit(http, "demo.sleep", seconds=0.5, steps=2)
    line = row(page, task["id"])
    await expect(line.locator("td.cell-type")).to_have_text("demo.sleep")
    await expect(line.locator("td.cell-owner")).to_have_text("anonymous")
    await expect(line.locator("span.status")).to_have_text("completed")
    completed = page.locator('.count[data-status="completed"] .count-value')
    await expect(completed).to_have_text("1")
    await assert_not_reloaded(page)


async def test_cancel_retry_and_delete_from_the_page(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, page: Page
) -> None:
    task = await submit(http, "demo.sleep", seconds=60, steps=60)
    await open_dashboard(page, app.http_url)
    line = row(page, task["id"])
    await expect(line.locator("span.status")).to_have_text("running")
    await line.click()
    await expect(page.locator("#panel-id")).to_have_text(task["id"])
    await expect(page.locator("#action-retry")).to_be_hidden()
    await page.click("#action-cancel")
    await expect(line.locator("span.status")).to_have_text("cancelled")
    await expect(page.locator("#panel-status")).to_have_text("cancelled")
    await expect(page.locator("#action-cancel")).to_be_hidden()
    await expect(page.locator("#action-retry")).to_be_visible()
    assert (await http.get(f"/api/tasks/{task['id']}")).json()["status"] == "cancelled"

    await page.click("#action-retry")
    await expect(line.locator("span.status")).to_have_text("running")
    await expect(page.locator("#panel-fields")).to_contain_text("2 of")
    await page.click("#action-delete")
    await expect(page.locator("#panel-status")).to_have_text("deleted")
    await expect(line).to_have_count(0)
    assert (await http.get(f"/api/tasks/{task['id']}")).status_code == 404


async def test_a_422_is_shown_next_to_the_field_it_names(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, page: Page
) -> None:
    await open_dashboard(page, app.http_url)
    await page.select_option("#submit-type", "demo.sleep")
    await page.fill('[data-path="/parameters/seconds"]', "5000")
    await page.fill('[data-path="/parameters/steps"]', "0")
    await page.click("#submit-form button[type=submit]")
    seconds_error = page.locator('[data-error-for="/parameters/seconds"]')
    await expect(seconds_error).to_contain_text("3600")
    await expect(page.locator('[data-error-for="/parameters/steps"]')).to_contain_text("minimum")
    await expect(page.locator('[data-error-for="/parameters/fail_at_step"]')).to_have_text("")
    await expect(page.locator("#submit-error")).to_contain_text("parameters_schema")
    assert (await http.get("/api/tasks")).json() == []


EXPORT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "Printed on every page."},
        "copies": {"type": "integer", "default": 2},
        "scale": {"type": "number"},
        "duplex": {"type": "boolean"},
        "paper": {"enum": ["A4", "Letter"], "default": "A4"},
        "margins": {
            "type": "object",
            "properties": {"top": {"type": "number"}, "unit": {"type": "string", "enum": ["mm", "in"]}},
        },
        "pages": {"type": "array", "items": {"type": "integer"}},
        "extra": {"anyOf": [{"type": "object"}, {"type": "array"}]},
    },
    "required": ["title"],
    "additionalProperties": False,
}


async def test_the_form_follows_the_types_schema(app: ServedApp, http: httpx.AsyncClient, page: Page) -> None:
    response = await http.post(
        "/api/task-types", json={"name": "exports.pdf", "parameters_schema": EXPORT_SCHEMA}
    )
    assert response.status_code == 201, response.text
    await open_dashboard(page, app.http_url)
    await page.select_option("#submit-type", "exports.pdf")
    field = lambda path: page.locator(f'[data-path="/parameters/{path}"]')  # noqa: E731
    await expect(field("copies")).to_have_value("2")
    await page.click("#submit-form button[type=submit]")
    await expect(page.locator('[data-error-for="/parameters/title"]')).to_have_text("this field is required")

    await field("title").fill("Exam 12")
    await field("copies").fill("3")
    await field("scale").fill("1.5")
    await field("duplex").check()
    await field("paper").select_option(label="Letter")
    await field("margins/top").fill("12.5")
    await field("margins/unit").select_option(label="mm")
    for index, value in enumerate(["4", "7"]):
        await page.click("text=+ add")
        await field(f"pages/{index}").fill(value)
    await field("extra").fill('{"note": "front desk"}')
    await page.click("#submit-form button[type=submit]")
    result = page.locator("#submit-result")
    await expect(result).to_have_text(re.compile(r"^submitted \S+$"))
    await expect(page.locator('[data-error-for="/parameters/title"]')).to_have_text("")
    task_id = str(await result.text_content()).split()[-1]
    assert (await http.get(f"/api/tasks/{task_id}")).json()["parameters"] == {
        "title": "Exam 12",
        "copies": 3,
        "scale": 1.5,
        "duplex": True,
        "paper": "Letter",
        "margins": {"top": 12.5, "unit": "mm"},
        "pages": [4, 7],
        "extra": {"note": "front desk"},
    }
    await expect(row(page, task_id).locator("span.status")).to_have_text("pending")


async def finished(tasks: TaskStore, task_ids: list[str], timeout_s: float) -> None:
    """Wait until every task is final (a readiness poll: the page's API is down meanwhile)."""
    async with asyncio.timeout(timeout_s):
        while not all([(await tasks.get(task_id)).status in TERMINAL for task_id in task_ids]):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_the_page_survives_the_api_restarting_and_ends_showing_the_right_states(
    settings: Settings, redis: Redis, worker: JobcastProcess, page: Page, tmp_path: Path
) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api = await asyncio.to_thread(start_api, settings, tmp_path / "api.log", port)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            await http.put("/api/task-types/demo.sleep", json={"max_attempts": 1})
            await open_dashboard(page, base_url)
            quick = await submit(http, "demo.sleep", seconds=3, steps=3)
            failing = await submit(http, "demo.sleep", seconds=3, steps=3, fail_at_step=3)
            endless = await submit(http, "demo.sleep", seconds=600, steps=600)
        tasks = [quick["id"], failing["id"], endless["id"]]
        for task_id in tasks:
            await expect(row(page, task_id).locator("span.status")).to_have_text("running")
        await row(page, endless["id"]).click()
        await expect(page.locator("#panel-status")).to_have_text("running")

        api.kill()
        await expect(page.locator("#connection")).to_have_text("reconnecting…")
        store = open_stores(settings, redis)[0]
        await store.change(endless["id"], RequestCancel())  # while no API is there to tell the page
        await finished(store, tasks, timeout_s=20)
        api = await asyncio.to_thread(start_api, settings, tmp_path / "api-again.log", port)

        await expect(page.locator("#connection")).to_have_text("live")
        statuses = [(await store.get(task_id)).status for task_id in tasks]
        assert statuses == ["completed", "failed", "cancelled"]
        for task_id, status in zip(tasks, statuses, strict=True):
            await expect(row(page, task_id).locator("span.status")).to_have_text(status)
        await expect(row(page, quick["id"]).locator(".percent")).to_have_text("100%")
        await expect(page.locator("#panel-status")).to_have_text("cancelled")
        await expect(page.locator('.count[data-status="failed"] .count-value')).to_have_text("1")
        await assert_not_reloaded(page)
    finally:
        api.stop()


async def put(http: httpx.AsyncClient, task_id: str, **fields: Any) -> None:
    response = await http.put(f"/api/tasks/{task_id}", json=fields)
    assert response.status_code == 200, response.text


async def tasks_in_every_state(http: httpx.AsyncClient) -> dict[str, list[str]]:
    """Worker-run demo tasks that complete, fail, run and get cancelled; an external type's
    tasks that wait, run with progress and get cancelled. Returns ids by expected status."""
    await http.put("/api/task-types/demo.sleep", json={"max_attempts": 1})
    await http.post("/api/task-types", json={"name": "reports.export", "description": "Monthly PDF reports"})
    ids: dict[str, list[str]] = {
        status: [] for status in ("pending", "running", "completed", "failed", "cancelled")
    }
    for steps in (4, 8, 2):
        ids["completed"].append((await submit(http, "demo.sleep", seconds=0.3, steps=steps))["id"])
    for step in (2, 3):
        ids["failed"].append(
            (await submit(http, "demo.sleep", seconds=0.3, steps=4, fail_at_step=step))["id"]
        )
    doomed = await submit(http, "demo.sleep", seconds=600, steps=600)
    ids["running"].append((await submit(http, "demo.sleep", seconds=900, steps=300))["id"])
    for current, message in [(42, "page 42 of 100"), (73, "page 73 of 100")]:
        task = await submit(http, "reports.export", month="2024-05")
        await put(http, task["id"], status="running", attempt=1)
        await put(
            http, task["id"], progress={"current": current, "total": 100, "message": message}, attempt=1
        )
        ids["running"].append(task["id"])
    waiting = await submit(http, "reports.export", month="2024-06")
    assert (await http.post(f"/api/tasks/{waiting['id']}/cancel")).status_code == 200
    ids["cancelled"] += [waiting["id"], doomed["id"]]
    for month in ("2024-07", "2024-08"):
        ids["pending"].append((await submit(http, "reports.export", month=month))["id"])
    return ids


async def test_screenshot_of_the_dashboard_with_tasks_in_every_state(
    app: ServedApp, http: httpx.AsyncClient, worker: JobcastProcess, page: Page
) -> None:
    ids = await tasks_in_every_state(http)
    await open_dashboard(page, app.http_url)
    doomed = ids["cancelled"][-1]
    await expect(row(page, doomed).locator("span.status")).to_have_text("running")
    await row(page, doomed).click()
    await expect(page.locator("#panel-id")).to_have_text(doomed)
    await page.click("#action-cancel")
    for status, task_ids in ids.items():
        for task_id in task_ids:
            await expect(row(page, task_id).locator("span.status")).to_have_text(status)
        count = page.locator(f'.count[data-status="{status}"] .count-value')
        await expect(count).to_have_text(str(len(task_ids)))
    shown = ids["running"][1]  # the external task at 42%
    await row(page, shown).click()
    await expect(page.locator("#panel-id")).to_have_text(shown)
    await expect(page.locator("#panel-timeline li")).to_have_count(3)  # created, started, progress
    await page.select_option("#submit-type", "demo.sleep")
    await page.fill('[data-path="/parameters/seconds"]', "30")
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "dashboard.png", full_page=True)
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


async def test_with_auth_on_the_page_asks_for_a_token_once_per_tab(
    settings: Settings, redis: Redis, page: Page
) -> None:
    _, token = await TokenStore(redis).create("ops", Role.ADMIN, [])
    secured = msgspec.structs.replace(settings, auth=True)
    async with ServedApp(secured) as app, httpx.AsyncClient(base_url=app.http_url) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        await create_type(http, "ext")
        task = await submit(http, "ext")
        await page.goto(app.http_url + "/")
        await expect(page.locator("#token-dialog")).to_be_visible()
        await expect(page.locator("#connection")).not_to_have_text("live")
        await page.fill("#token-input", token)
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#connection")).to_have_text("live")
        await expect(row(page, task["id"]).locator("span.status")).to_have_text("pending")
        assert await page.evaluate("sessionStorage.getItem('jobcast.token')") == token
        later = await submit(http, "ext")
        await expect(row(page, later["id"]).locator("span.status")).to_have_text("pending")
        await page.reload()
        await expect(page.locator("#connection")).to_have_text("live")
        await expect(page.locator("#token-dialog")).to_be_hidden()
        await expect(page.locator('.count[data-status="pending"] .count-value')).to_have_text("2")


STORE_SIZE = 10_000
BURST_ROUNDS = 20  # progress reports for each of the 50 listed tasks: 1,000 events
BURST_ROUND_S = 0.25  # 50 events every quarter second: 200 a second


async def fill_the_store(store: TaskStore, type_id: int) -> list[str]:
    """STORE_SIZE pending tasks of an external type, written straight to the store."""
    ids: list[str] = []
    for _ in range(STORE_SIZE // 250):
        batch = [
            new_task(task_type="ext", task_type_id=type_id, parameters={"n": len(ids) + i}, priority=100,
                     metadata={}, owner="anonymous", max_attempts=3, at=utc_now())
            for i in range(250)
        ]  # fmt: skip
        await asyncio.gather(*(store.create(t, e, queued=False, idempotency_key=None) for t, e in batch))
        ids += [task.id for task, _ in batch]
    return ids


async def test_ten_thousand_tasks_and_200_events_a_second_keep_the_page_responsive(
    app: ServedApp, http: httpx.AsyncClient, settings: Settings, redis: Redis, page: Page
) -> None:
    store = open_stores(settings, redis)[0]
    ids = await fill_the_store(store, (await create_type(http, "ext"))["id"])
    await open_dashboard(page, app.http_url)
    await expect(page.locator("#task-rows tr")).to_have_count(PAGE_SIZE)
    await expect(page.locator('.count[data-status="pending"] .count-value')).to_have_text(str(STORE_SIZE))
    newest = ids[-PAGE_SIZE:]
    await expect(page.locator("#task-rows tr").first).to_have_attribute("data-task-id", newest[-1])
    await page.click("#page-older")
    await expect(page.locator("#task-rows tr").first).to_have_attribute("data-task-id", ids[-PAGE_SIZE - 1])
    await page.click("#page-newer")
    await expect(page.locator("#task-rows tr").first).to_have_attribute("data-task-id", newest[-1])

    await asyncio.gather(*(store.change(task_id, Start(1)) for task_id in newest))
    for done in range(1, BURST_ROUNDS + 1):
        progress = Progress(current=done, total=BURST_ROUNDS, message=f"round {done}")
        await asyncio.gather(*(store.change(task_id, ReportProgress(1, progress)) for task_id in newest))
        if done == BURST_ROUNDS // 2:  # mid-burst, the page still answers a click
            await row(page, newest[0]).click()
            await expect(page.locator("#panel-id")).to_have_text(newest[0])
        await asyncio.sleep(BURST_ROUND_S)  # pacing the burst, not waiting for anything

    for task_id in newest:
        await expect(row(page, task_id).locator(".percent")).to_have_text("100%")
    await expect(page.locator('.count[data-status="running"] .count-value')).to_have_text(str(PAGE_SIZE))
    await expect(page.locator("#panel-timeline li")).to_have_count(2 + BURST_ROUNDS)
    await assert_not_reloaded(page)


async def test_the_page_reads_its_tasks_again_when_the_server_may_have_missed_events(
    app: ServedApp, http: httpx.AsyncClient, redis: Redis, page: Page
) -> None:
    await create_type(http, "ext")
    task = await submit(http, "ext")
    await open_dashboard(page, app.http_url)
    await expect(row(page, task["id"]).locator("span.status")).to_have_text("pending")
    async with page.expect_request(lambda request: "/api/tasks?" in request.url) as listing:
        await redis.client_kill_filter(_type="pubsub")  # the hub's subscription drops: events_missed
    assert "limit=50" in (await listing.value).url
    await expect(page.locator("#connection")).to_have_text("live")
    await assert_not_reloaded(page)

"""hastack's web dashboard on the shared stack: HTTPS behind the monitoring login, its state
from the live sources, and the page itself in a real headless browser (Playwright driving
Debian's chromium, no browser download): it loads with no console error, names the right
leader, and follows a node-loss drill to the new leader. How long the page took to show the
new leader after the leader key moved is printed, not asserted (docs/monitoring.md has the
measured figures)."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.integration.conftest import Stack, hastack
from tests.integration.drill_checks import assert_clean_and_healed, drill_report
from tests.integration.helpers import wait_until

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in the test run; the page is our own, on loopback
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _login(stack: Stack) -> tuple[str, str]:
    return ("hastack", stack.hs.secrets.monitoring_password)


def _get(stack: Stack, path: str, auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.get(
        f"{stack.plan.dashboard_url}{path}",
        auth=auth,
        verify=str(stack.plan.paths.ca_cert),
        timeout=10,
    )


def test_the_dashboard_wants_the_login_and_shows_the_live_stack(stack: Stack) -> None:
    assert _get(stack, "/api/state").status_code == 401
    assert _get(stack, "/", ("hastack", "not-the-password")).status_code == 401

    def state() -> dict[str, Any] | None:
        answer = _get(stack, "/api/state", _login(stack))
        body: dict[str, Any] = answer.json()
        # Prometheus needs a scrape or two after `up` before every part has rows.
        return body if body["backends"] and body["apps"] and body["pools"] else None

    body = wait_until(state, timeout_s=60, interval_s=2)
    assert body["leader"] == stack.hs.leader()
    assert sorted(m["name"] for m in body["members"]) == ["pg1", "pg2", "pg3"]
    assert {a["name"] for a in body["apps"]} == {"app1", "app2"} and all(
        a["up"] for a in body["apps"]
    )
    assert not body["errors"], body["errors"]
    charts = _get(stack, "/api/charts", _login(stack)).json()["charts"]
    assert len(charts) >= 5 and all(c["error"] is None for c in charts), charts


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is installed by `make test` (scripts/install-deps --test)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _open(browser: Browser, stack: Stack) -> tuple[Page, list[str]]:
    user, password = _login(stack)
    context = browser.new_context(
        http_credentials={"username": user, "password": password},
        # The stack's own CA signs the certificate; the chain is checked by httpx above.
        ignore_https_errors=True,
        viewport={"width": 1400, "height": 1000},
    )
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto(f"{stack.plan.dashboard_url}/")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    return page, problems


def test_the_page_loads_in_a_browser_and_names_the_leader(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    page, problems = _open(browser, stack)
    assert page.inner_text("#leader") == stack.hs.leader()
    assert page.locator(".member").count() == 3
    page.wait_for_selector("body[data-charts='1']", timeout=20_000)
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert not problems, problems
    page.context.close()


def test_the_page_follows_a_node_loss_drill_to_the_new_leader(
    stack: Stack, browser: Browser
) -> None:
    page, problems = _open(browser, stack)
    old = stack.hs.leader()
    assert page.inner_text("#leader") == old
    moved_at: list[float] = []

    def watch_the_key() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            leader = stack.hs.leader()
            if leader not in (None, old):
                moved_at.append(time.monotonic())
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_the_key, daemon=True)
    watcher.start()
    drill: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: drill.update(
            result=hastack(stack.spec, "drill", "run", "node-loss", "--json", timeout_s=600)
        ),
        daemon=True,
    )
    runner.start()
    page.wait_for_function(
        "old => document.body.dataset.leader && document.body.dataset.leader !== old",
        arg=old,
        timeout=120_000,
        polling=50,
    )
    shown_at = time.monotonic()
    new = page.inner_text("#leader")
    watcher.join(5)
    runner.join(600)
    # The drill itself, checked as test_50 checks every drill (it is not run there again).
    assert_clean_and_healed(stack, drill_report(drill["result"]))
    assert new == stack.hs.leader() and new != old
    assert moved_at, "the leader key never moved"
    print(f"the page showed {new} {shown_at - moved_at[0]:.2f} s after the leader key moved")
    assert not problems, problems
    page.context.close()

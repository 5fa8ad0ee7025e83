"""The page in a real browser: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server(settings, engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    import uvicorn

    from web.app import State, create_app

    app = create_app(settings, State(settings, engine.runtime, engine, None))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, locale="fr-FR")
    pg = ctx.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def test_ask_and_see_highlighted_answer(page, server: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    page.fill("#q", "qui a critiqué Salesforce ?")
    page.press("#q", "Enter")
    page.wait_for_selector("#answer")
    assert "des activistes" in page.inner_text("#answer .short")
    first = page.locator(".result").first
    # the answer sentence may be cut into several marks by the query-word marks inside it
    answer_text = "".join(m.text_content() or "" for m in first.locator("mark.hl-answer").all())
    assert "des activistes critiquant le récent contrat" in answer_text
    assert first.locator("mark.hl-term").count() >= 2
    assert "passage" in page.inner_text("#count")
    # the answer highlight is visibly different from the term highlight
    bg_answer = page.eval_on_selector(".result mark.hl-answer", "e => getComputedStyle(e).backgroundColor")
    bg_term = page.eval_on_selector(".result mark.hl-term", "e => getComputedStyle(e).backgroundColor")
    assert bg_answer != bg_term
    shot = os.environ.get("SALON_SCREENSHOT")
    page.screenshot(path=shot or str(tmp_path / "results.png"))
    # open the article: scrolled to and highlighting the passage
    first.locator("a.result-link").click()
    page.wait_for_selector("#passage")
    assert "des activistes" in page.inner_text("#passage")
    assert page.evaluate("document.getElementById('passage').getBoundingClientRect().top") < 900


def test_filter_by_event(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/?q=salon")
    page.select_option("#event", "Salon du e-Marketing 2012")
    page.click("button[type=submit]")
    page.wait_for_selector(".result")
    events = page.locator(".result .event").all_inner_texts()
    assert events and set(events) == {"Salon du e-Marketing 2012"}
    page.goto(server + "/?q=salon&event=Dreamforce+2019&date_to=2015-01-01")
    assert page.locator("#empty").is_visible()
    assert "Aucun résultat" in page.inner_text("#empty")


def test_xss_payloads_do_not_execute(page, server: str) -> None:  # type: ignore[no-untyped-def]
    payload = "<script>alert(1)</script> \"><img src=x onerror=alert(9)> salon piégé livre d'or"
    page.goto(server + "/")
    page.fill("#q", payload)
    page.press("#q", "Enter")
    page.wait_for_selector(".result")
    body = page.inner_text("body")
    assert "onerror=alert(4)" in body  # the indexed article's payload is shown as text
    assert page.locator("img").count() == 0
    assert page.locator("a.article-url").count() == 0  # its javascript: url is never a link
    page.locator("a.result-link").first.click()
    page.wait_for_load_state()
    assert page.locator("img").count() == 0
    time.sleep(0.3)
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_keyboard_only(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has focus on arrival
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # the skip link comes first in tab order
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")  # skip to the content, then into the box
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("combien de participants à Dreamforce ?")
    page.keyboard.press("Enter")
    page.wait_for_selector(".result")
    page.focus("#q")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("document.activeElement.classList.contains('result-link')")
    page.keyboard.press("Enter")
    page.wait_for_selector(".article-text")


def test_works_without_javascript_and_on_small_screens(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 740})
    pg = ctx.new_page()
    pg.goto(server + "/")
    pg.fill("#q", "qui a critiqué Salesforce ?")
    pg.click("button[type=submit]")
    pg.wait_for_selector("#answer")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 360
    ctx.close()


def test_api_docs_render_offline_and_run_a_search(page, server: str) -> None:  # type: ignore[no-untyped-def]
    """The footer's API link opens Swagger UI served by Salon itself (no CDN: this machine has no
    network), under the page's CSP with no violation, and a search runs from it."""
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.on("pageerror", lambda e: console.append(str(e)))
    page.goto(server + "/")
    page.get_by_role("link", name="API").click()
    page.wait_for_url("**/docs")
    summary = page.locator(".opblock-summary", has_text="/search").first
    summary.wait_for(timeout=20_000)
    summary.click()
    block = page.locator(".opblock", has_text="/search").first
    block.locator("input[placeholder='q']").fill("qui a critiqué Salesforce ?")
    block.locator("button.execute").click()
    live = block.locator(".live-responses-table tr.response .response-col_status").first
    live.wait_for(timeout=20_000)
    assert live.inner_text().strip().startswith("200")
    assert "des activistes" in block.locator(".live-responses-table .microlight").first.inner_text()
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m], console

"""The page in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).
The server, browser and page fixtures are in conftest.py (tests/test_a11y.py uses them too)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.browser]


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
    assert "passage" in page.inner_text("#status")
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
    trap = page.locator(".result", has_text="Salon piégé").first
    assert trap.locator("a.article-url").count() == 0  # its javascript: url is never a link
    assert page.locator("a[href^='javascript' i]").count() == 0
    page.locator("a.result-link").first.click()
    page.wait_for_load_state()
    assert page.locator("img").count() == 0
    time.sleep(0.3)
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_keyboard_only(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has focus on arrival
    for _ in range(3):  # back past the language switch and the brand: the skip link comes first
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")  # skip to the content, then into the box
    page.wait_for_function("() => document.activeElement.id === 'main'")
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


def _settled(page, text: str) -> None:  # type: ignore[no-untyped-def]
    """Waits until the status line says ``text`` (results as you type arrive after a pause)."""
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text)


def test_status_line_stays_and_announces_each_change(page, server: str) -> None:  # type: ignore[no-untyped-def]
    """Results as you type change the text of one persistent live region; the region itself is
    never replaced (a replaced region is not announced), and the results list is not one."""
    page.goto(server + "/")
    status = page.locator("#status")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert page.get_attribute("#results", "aria-live") is None
    page.evaluate("window.__status = document.getElementById('status')")
    page.evaluate("window.__results = document.getElementById('results')")
    page.fill("#q", "qui a critiqué Salesforce ?")
    _settled(page, "des activistes")
    first = status.inner_text()
    assert "passages en" in first and page.locator("#answer").count() == 1
    page.fill("#q", "livre d'or")
    page.wait_for_function("t => document.getElementById('status').textContent !== t", arg=first)
    assert "Réponse" not in status.inner_text() and "passage" in status.inner_text()
    assert page.evaluate("window.__status === document.getElementById('status')")
    assert page.evaluate("window.__results === document.getElementById('results')")


def test_slash_focuses_the_box_only_outside_fields(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/?q=salon")
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.fill("#q", "a")
    page.press("#q", "End")
    page.keyboard.type("/b")
    assert page.input_value("#q") == "a/b"  # typed in the box, not taken as the shortcut
    page.focus("#date_from")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "date_from"
    page.focus("#event")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "event"


def test_http_error_is_shown_and_stale_results_go(page, server: str) -> None:  # type: ignore[no-untyped-def]
    """A query past 500 characters is refused (422): the page says so and no longer shows the
    results of the query before it."""
    page.goto(server + "/?q=Dreamforce")
    assert page.locator(".result").count() > 0
    # the box's maxlength stops typing at 500; a pasted or scripted value is not held back
    page.evaluate(
        "() => { const q = document.getElementById('q'); q.value = 'x'.repeat(501);"
        " q.dispatchEvent(new Event('input', {bubbles: true})); }"
    )
    _settled(page, "trop longue")
    assert page.locator("#results .error").inner_text() == "La requête est trop longue."
    assert page.locator(".result").count() == 0


def test_title_and_address_follow_the_query(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/")
    page.fill("#q", "Dreamforce")
    _settled(page, "passage")
    assert page.title() == "Dreamforce — Salon" and "q=Dreamforce" in page.url
    page.fill("#q", "activistes")
    page.wait_for_function("() => document.title.startsWith('activistes')")
    assert "q=activistes" in page.url
    page.go_back()  # typing made one entry: Back returns to the page before the search
    page.wait_for_url(server + "/")
    page.goto(server + "/?q=salon")
    page.fill("#q", "Dreamforce")
    page.wait_for_function("() => document.title.startsWith('Dreamforce')")
    page.go_back()
    page.wait_for_url("**/?q=salon")
    page.wait_for_function("() => document.title.startsWith('salon')")
    assert page.input_value("#q") == "salon"


def test_dates_in_words_and_passages_in_their_language(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    cases = [("fr-FR", "novembre 2019", "14 mars 2021"), ("en-US", "November 2019", "March 14, 2021")]
    for locale, month, day in cases:
        ctx = browser.new_context(locale=locale)
        pg = ctx.new_page()
        pg.goto(server + "/?q=Dreamforce+Salesforce")
        t = pg.locator(".result time").first
        assert t.inner_text() == month and t.get_attribute("datetime") == "2019-11"
        assert pg.locator(".result .passage").first.get_attribute("lang") == "fr"
        pg.goto(server + "/?q=small+publishers+book+fair")
        card = pg.locator(".result", has_text="Lyon Book Fair").first
        assert card.locator("time").inner_text() == day
        assert card.locator(".passage").first.get_attribute("lang") == "en"
        assert card.locator("a.result-link").get_attribute("lang") == "en"
        card.locator("a.result-link").click()
        pg.wait_for_selector(".article-text")
        assert pg.get_attribute(".article-text", "lang") == "en"
        assert pg.get_attribute("html", "lang") == locale[:2]
        assert pg.get_attribute("a.article-url", "href") == "https://example.org/lyon-book-fair-2021"
        ctx.close()


def test_passages_are_cropped_with_the_rest_a_click_away(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    """A card shows the answer sentence and the query words, not its whole passage; the whole
    passage opens in place, without JavaScript too."""
    ctx = browser.new_context(java_script_enabled=False, locale="fr-FR")
    pg = ctx.new_page()
    pg.goto(server + "/?q=" + "qui a critiqué Salesforce ?")
    first = pg.locator(".result").first
    shown = first.locator("> .passage").inner_text()
    whole = first.locator("details.whole .passage").text_content() or ""
    assert "des activistes critiquant le récent contrat" in shown and shown.startswith("…")
    assert len(shown) < 0.7 * len(whole)
    assert not first.locator("details.whole .passage").is_visible()
    first.locator("details.whole summary").click()
    assert first.locator("details.whole .passage").is_visible()
    ctx.close()


def test_english_interface(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    """English by Accept-Language; the switch in the header changes language and is remembered."""
    ctx = browser.new_context(locale="en-US")
    pg = ctx.new_page()
    pg.goto(server + "/")
    assert pg.get_attribute("html", "lang") == "en" and pg.inner_text("h1") == "Search event articles"
    pg.fill("#q", "qui a critiqué Salesforce ?")
    _settled(pg, "passages in")
    assert "Answer: des activistes." in pg.inner_text("#status")
    assert pg.inner_text("#answer h2").startswith("Answer")
    assert pg.locator(".result .source").first.inner_text().startswith("Source:")
    pg.goto(server + "/articles/nope")
    assert pg.inner_text(".error") == "Article not found: “nope”"
    pg.get_by_role("link", name="Français").click()
    pg.wait_for_load_state()
    assert pg.get_attribute("html", "lang") == "fr" and pg.inner_text(".error") == "Article introuvable : « nope »"
    pg.goto(server + "/?q=salon")  # the choice outlives the page it was made on
    assert pg.get_attribute("html", "lang") == "fr" and pg.inner_text("button[type=submit]") == "Rechercher"
    ctx.close()


def _facets_then_filter_then_unfilter(pg, server: str) -> None:  # type: ignore[no-untyped-def]
    pg.goto(server + "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F")
    assert "Salesforce" in pg.locator("#facet-organisations a").all_inner_texts()
    assert "San Francisco" in pg.locator("#facet-places a").all_inner_texts()
    before = pg.locator(".result .event").all_inner_texts()
    status = pg.inner_text("#status")
    pg.locator("#facet-people a", has_text="Marc Benioff").click()
    pg.wait_for_selector(".chip")
    assert "person=Marc+Benioff" in pg.url
    assert "Marc Benioff" in pg.inner_text(".chip")
    events = pg.locator(".result .event").all_inner_texts()
    assert events and set(events) == {"Dreamforce 2019"}
    # the filter is gone from the panel (it is a chip now), and stays on when the query changes
    assert "Marc Benioff" not in pg.locator("#facets").inner_text()
    assert pg.locator("#search-form input[type=hidden][name=person]").get_attribute("value") == "Marc Benioff"
    pg.locator(".chip").click()
    pg.wait_for_load_state()
    assert pg.locator(".chip").count() == 0
    assert "person=" not in pg.url
    assert pg.locator(".result .event").all_inner_texts() == before
    assert pg.inner_text("#status").split(" en ")[0] == status.split(" en ")[0]  # the same count


def test_facet_panel_filters_and_chips(page, server: str) -> None:  # type: ignore[no-untyped-def]
    _facets_then_filter_then_unfilter(page, server)
    # a typed search (salon.js swaps the results) keeps the filter, its chip, and brings its panel
    page.goto(server + "/?q=salon&person=Marc+Benioff")
    status = page.inner_text("#status")
    page.fill("#q", "conférence Salesforce")
    page.wait_for_function("s => document.getElementById('status').textContent.trim() !== s", arg=status)
    page.wait_for_function("() => location.search.includes('person=Marc+Benioff')")
    assert "Marc Benioff" in page.inner_text(".chip")
    assert set(page.locator(".result .event").all_inner_texts()) == {"Dreamforce 2019"}
    assert page.locator("#facets h3").count() >= 1


def test_facet_panel_without_javascript(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    ctx = browser.new_context(java_script_enabled=False, locale="fr-FR")
    try:
        pg = ctx.new_page()
        _facets_then_filter_then_unfilter(pg, server)
        assert "Personne : Marc Benioff" not in pg.content()  # gone after removal
        pg.goto(server + "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F&person=Marc+Benioff")
        assert pg.inner_text(".chip").startswith("Personne : Marc Benioff")
        # his name marked in the passages; the chip's arrow opens his page
        marks = pg.locator(".result .passage mark.hl-entity")  # here in « autres passages », closed
        assert marks.count() >= 1 and set(marks.all_text_contents()) == {"Marc Benioff"}
        pg.locator(".chips a.entity-link").click()
        pg.wait_for_url("**/entities/person/Marc%20Benioff")
        assert pg.locator(".mentions mark.hl-entity").count() >= 3
    finally:
        ctx.close()


def test_one_card_per_article(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F")
    titles = page.locator(".result-link").all_inner_texts()
    assert titles and len(titles) == len(set(titles))
    more = page.locator(".result", has_text="Dreamforce 2019 : plongée").locator(".more-passages")
    assert "autres passages de cet article" in more.locator("summary").inner_text()
    more.locator("summary").click()
    assert more.locator("li .passage").first.is_visible()
    assert "start=" in (more.locator("li a").first.get_attribute("href") or "")


def test_entity_page_lists_the_articles_naming_it(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "/entities/person/marc%20benioff")  # case aside; the name as written
    assert page.inner_text("h1") == "Marc Benioff"
    assert "nommé dans 1 article" in page.inner_text("main")
    assert page.locator(".result-link").all_inner_texts() == [
        "Dreamforce 2019 : plongée au cœur de la conférence de Salesforce à San Francisco"
    ]
    # the passages that mention him, his name marked where the article writes it, and the picture
    marks = page.locator(".mentions .passage mark.hl-entity")
    assert marks.count() >= 3 and set(marks.all_text_contents()) == {"Marc Benioff"}
    assert marks.first.is_visible()
    svg = page.locator(".timeline svg[role=img]")
    assert svg.is_visible() and svg.locator("rect").count() == 1
    assert page.locator("#timeline-desc").text_content() == "2019 : 3 mentions"
    page.click("text=Chercher les passages qui le nomment")
    page.wait_for_selector(".chip")
    assert set(page.locator(".result .event").all_inner_texts()) == {"Dreamforce 2019"}
    # from the facet panel's arrow to a place's page; the name itself still filters
    page.goto(server + "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F")
    page.locator("#facet-places a.entity-link[aria-label='Tout sur San Francisco']").click()
    page.wait_for_url("**/entities/place/San%20Francisco")
    assert page.inner_text("h1") == "San Francisco"
    assert page.locator(".result-link").count() >= 1
    r = page.goto(server + "/entities/planet/Mars")
    assert r is not None and r.status == 422

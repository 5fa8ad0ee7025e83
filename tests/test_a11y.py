"""WCAG 2.2 AA, checked by axe-core in the real browser on every kind of page, desktop and mobile,
in French and English; and the page's catalog covers every string the page shows.

axe-core comes inside the axe-playwright-python package (its axe.min.js, injected into the
page), so nothing is downloaded at test time.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# WCAG 2.0, 2.1 and 2.2 at levels A and AA, and axe's best practices (reported, not failed on
# unless serious or critical).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "mobile": {"width": 375, "height": 740}}
PAGES = {
    "home": "/",
    "results": "/?q=Dreamforce+Salesforce",
    "answer": "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F",
    "facets-and-chip": "/?q=qui+a+critiqu%C3%A9+Salesforce+%3F&person=Marc+Benioff",
    "article": "/articles/dreamforce-2019?start=3209&end=3401&q=qui+a+critiqu%C3%A9+Salesforce+%3F#passage",
    "english-article": "/articles/lyon-book-fair-2021",
    "entity": "/entities/person/Marc%20Benioff",
    "entity-years": "/entities/other/Twitter",
    "error": "/articles/nope",
    "not-found": "/no/such/page",
}


def _report(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} — {len(v['nodes'])} node(s)")
        for n in v["nodes"][:5]:
            lines.append(f"    {', '.join(map(str, n['target']))}: {n.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


@pytest.mark.model
@pytest.mark.browser
@pytest.mark.parametrize("locale", ["fr-FR", "en-US"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_no_serious_or_critical_violation(browser, server: str, viewport: str, locale: str) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    ctx = browser.new_context(viewport=VIEWPORTS[viewport], locale=locale)
    pg = ctx.new_page()
    failures = {}
    for name, path in PAGES.items():
        pg.goto(server + path, wait_until="load")
        if name == "answer":
            pg.wait_for_selector("#answer")
        results = axe.run(pg, options={"runOnly": {"type": "tag", "values": TAGS}})
        violations = results.response["violations"]
        print(f"\n{viewport} {locale} {name}: {len(violations)} violation(s)")
        if violations:
            print(_report(violations))
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        if bad:
            failures[name] = _report(bad)
    ctx.close()
    assert not failures, "\n".join(f"{k}:\n{v}" for k, v in failures.items())


def _contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two computed `rgb(r, g, b)` colours."""

    def lum(c: str) -> float:
        ch = [int(x) / 255 for x in c[c.index("(") + 1 : c.index(")")].split(",")[:3]]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.model
@pytest.mark.browser
def test_focus_ring_and_field_borders_reach_3_to_1(page, server: str) -> None:  # type: ignore[no-untyped-def]
    """axe does not measure focus indicators or control borders (WCAG 1.4.11, 2.4.13): measured
    here, against the page and the field's own background."""
    page.goto(server + "/?q=Dreamforce")
    style = "(e, p) => getComputedStyle(e)[p]"
    page_bg = page.eval_on_selector("body", "e => getComputedStyle(document.documentElement).backgroundColor")
    card_bg = page.eval_on_selector(".result", style, "backgroundColor")
    page.focus("#q")
    page.keyboard.press("Tab")  # keyboard focus, so :focus-visible applies
    page.keyboard.press("Shift+Tab")
    ring = page.eval_on_selector("#q", style, "outlineColor")
    assert page.eval_on_selector("#q", style, "outlineStyle") == "solid"
    for bg in (page_bg, card_bg):
        assert _contrast(ring, bg) >= 3, (ring, bg)
    for sel in ("#q", "#event", "#date_from"):
        border = page.eval_on_selector(sel, style, "borderTopColor")
        inside = page.eval_on_selector(sel, style, "backgroundColor")
        assert _contrast(border, page_bg) >= 3 and _contrast(border, inside) >= 3, (sel, border)


def test_catalog_covers_every_page_string() -> None:
    """Every string the templates and web/ mark for translation has a French translation that is
    neither empty nor fuzzy, and keeps the msgid's placeholders: no English slips into the page."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    method_map = [("templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    wanted = {m[2] if isinstance(m[2], str) else m[2][0] for m in extract_from_dir(ROOT / "web", method_map, options)}
    po = (ROOT / "web" / "locale" / "fr" / "LC_MESSAGES" / "messages.po").read_bytes()
    catalog = read_po(io.BytesIO(po))
    assert wanted, "nothing extracted"
    for msgid in sorted(wanted):
        m = catalog.get(msgid)
        assert m is not None, f"no French for {msgid!r}"
        assert not m.fuzzy and all(m.string if isinstance(m.string, tuple) else [m.string]), msgid
    # Babel's checks: the same %(name)s placeholders in msgid and msgstr, the plural forms there
    assert [(m.id, errors) for m, errors in catalog.check()] == []

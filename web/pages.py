"""HTML pages in the reader's language: one Jinja2 environment per locale, and the one render call
every page goes through (search page, article, error)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from search.answer import question_language
from search.types import Facets, Result
from web.i18n import (
    COOKIE,
    COOKIE_MAX_AGE,
    ERROR_MESSAGES,
    GENERIC_ERROR,
    LOCALES,
    choose_locale,
    date_attr,
    human_date,
    lang_tag,
    language_name,
    load_translations,
)
from web.render import answer_pieces, crop, segments

# The other language's name, written in that language, for the switch in the page header.
SWITCH = {"fr": ("en", "English"), "en": ("fr", "Français")}

# The facet panel: the entity filters (query parameter, facet kind) and how many values of each it lists.
FACET_KINDS = (("person", "people"), ("org", "organisations"), ("place", "places"))
FACET_SHOWN = 8
# The entity kind (as /entities/{kind}/… names it) of each filter parameter.
ENTITY_KIND = {"person": "person", "org": "organisation", "place": "place"}


def entity_url(kind: str, value: str) -> str:
    """The entity page of ``value``: the whole name one path segment (a slash in it escaped)."""
    return f"/entities/{kind}/{quote(value, safe='')}"


def facet_links(
    base: dict[str, Any], chosen: dict[str, list[str]], facets: Facets | None
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, list[tuple[str, int, str, str | None]]]]]:
    """The page's active entity filters as (parameter, value, URL without it, its entity page),
    and its panel as (facet kind, [(value, count, URL adding it, its entity page or None)]):
    plain links, so both work without a script. An event value replaces the event filter; the
    page starts again at its first result."""
    params = [(key, v) for key, v in base.items() if v] + [(p, v) for p, vs in chosen.items() for v in vs]

    def url(pairs: list[tuple[str, Any]]) -> str:
        return "/?" + urlencode(pairs)

    chips = [
        (p, v, url([pair for pair in params if pair != (p, v)]), entity_url(ENTITY_KIND[p], v))
        for p, vs in chosen.items()
        for v in vs
    ]
    panel: list[tuple[str, list[tuple[str, int, str, str | None]]]] = []
    if facets is None:
        return chips, panel
    for param, kind in FACET_KINDS:
        taken = {v.casefold() for v in chosen[param]}
        values = [f for f in getattr(facets, kind) if f.value.casefold() not in taken][:FACET_SHOWN]
        if values:
            panel.append(
                (
                    kind,
                    [
                        (f.value, f.count, url([*params, (param, f.value)]), entity_url(ENTITY_KIND[param], f.value))
                        for f in values
                    ],
                )
            )
    events = [f for f in facets.events if f.value != base.get("event")][:FACET_SHOWN]
    if len(facets.events) > 1 and events:
        without = [pair for pair in params if pair[0] != "event"]
        panel.append(("events", [(f.value, f.count, url([*without, ("event", f.value)]), None) for f in events]))
    return chips, panel


def by_article(results: list[Result]) -> list[list[Result]]:
    """The page's results, one group per article in the order of its best passage, each group
    best passage first."""
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.doc_id, []).append(r)
    return list(groups.values())


def _error_text(gettext: Callable[[str], str]) -> Callable[..., str]:
    def error_text(code: str, subject: str | None = None) -> str:
        text = gettext(ERROR_MESSAGES.get(code, GENERIC_ERROR))
        # the quotes and their spacing are the language's own (« … » in French)
        return gettext("%(message)s: “%(subject)s”") % {"message": text, "subject": subject} if subject else text

    return error_text


class Pages:
    """Renders the page templates; each locale has its own environment, so concurrent requests
    in different languages never share installed translations."""

    def __init__(self, directory: Path) -> None:
        self.templates: dict[str, Jinja2Templates] = {}
        for locale in LOCALES:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(str(directory)),
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
            )
            tr = load_translations(locale)
            env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
            env.globals |= {
                "locale": locale,
                "segments": segments,
                "answer_pieces": answer_pieces,
                "crop": crop,
                "by_article": by_article,
                "lang_tag": lang_tag,
                "date_attr": date_attr,
                "error_text": _error_text(tr.gettext),
                "text_lang": question_language,
            }
            env.filters["human_date"] = lambda value, _loc=locale: human_date(value, _loc)
            env.filters["language_name"] = lambda value, _loc=locale: language_name(value, _loc)
            self.templates[locale] = Jinja2Templates(env=env)

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        asked = request.query_params.get("lang")
        locale = choose_locale(asked, request.cookies.get(COOKIE), request.headers.get("accept-language"))
        other, other_name = SWITCH[locale]
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        context = context | {
            "switch_url": request.url.path + "?" + urlencode([*params, ("lang", other)]),
            "switch_lang": other,
            "switch_name": other_name,
        }
        # The same URL answers in either language: caches must keep the two apart.
        vary = ", ".join(v for v in ((headers or {}).get("Vary"), "Accept-Language, Cookie") if v)
        out = self.templates[locale].TemplateResponse(
            request,
            name,
            context,
            status_code=status_code,
            headers={**(headers or {}), "Vary": vary, "Content-Language": locale},
        )
        if asked in LOCALES:
            out.set_cookie(COOKIE, locale, max_age=COOKIE_MAX_AGE, samesite="lax", httponly=True)
        return out

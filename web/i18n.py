"""The page's languages: gettext catalogs, the reader's choice of language, dates in words.

The templates are written in English (the msgids); French, the default, comes from
``web/locale/fr/LC_MESSAGES/messages.po``. The catalog is compiled in memory when the app starts,
so a fresh checkout needs no compile step and no compiled file can drift from its source.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
import re
from pathlib import Path

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = ("fr", "en")
DEFAULT = "fr"
# An explicit choice (the page's language link, `?lang=en`) is remembered in this cookie.
COOKIE = "salon_lang"
COOKIE_MAX_AGE = 365 * 24 * 3600


def N_(message: str) -> str:
    """Marks a string for the catalog without translating it (translated where it is shown)."""
    return message


# What the page says for each error code of the API (whose own messages stay English).
ERROR_MESSAGES = {
    "empty_query": N_("The query is empty."),
    "query_too_long": N_("The query is too long."),
    "invalid_parameter": N_("A parameter is invalid."),
    "too_many_requests": N_("Too many questions at once; try again in a moment."),
    "index_unavailable": N_("No index is served at the moment."),
    "article_not_found": N_("Article not found"),
    "not_found": N_("Page not found"),
    "method_not_allowed": N_("Method not allowed"),
    "request_too_large": N_("Request too large"),
    "uri_too_long": N_("Address too long"),
    "internal_error": N_("Internal error"),
}
# Any other code gets this: the API's message may name things a reader need not see.
GENERIC_ERROR = N_("Something went wrong.")


def load_translations(locale: str) -> gettext.NullTranslations:
    """The catalog of ``locale`` compiled from its .po; English is the msgids themselves."""
    po = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


def choose_locale(query_lang: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The explicit switch first, then the remembered choice, then the browser's languages."""
    for given in (query_lang, cookie):
        if given is not None and given in LOCALES:
            return given
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if m := re.search(r"q=([0-9.]+)", params):
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        primary = tag.split("-")[0].lower()
        if primary in LOCALES and q > 0:
            ranked.append((-q, i, primary))
    return min(ranked)[2] if ranked else DEFAULT


_LANG_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def lang_tag(value: str | None) -> str:
    """An article's language as an HTML `lang` value, or "" when the metadata holds no tag."""
    return value if value and _LANG_TAG.fullmatch(value) else ""


def date_attr(value: str | None) -> str:
    """The metadata date when it is a YYYY[-MM[-DD]] a `<time datetime>` accepts, else ""."""
    return value if value and _DATE.fullmatch(value) else ""


def human_date(value: str | None, locale: str) -> str:
    """« novembre 2019 », "November 2019", « 5 novembre 2019 »; a date of another shape as it is."""
    m = _DATE.fullmatch(value or "")
    if not m:
        return value or ""
    year, month, day = m.groups()
    try:
        if day:
            return format_date(dt.date(int(year), int(month), int(day)), "long", locale=locale)
        if month:
            return format_skeleton("yMMMM", dt.date(int(year), int(month), 1), locale=locale)
    except ValueError:  # a month 13 or a 31 February: shown as written
        return value or ""
    return year


def language_name(code: str | None, locale: str) -> str:
    """« anglais », "French": an article's language named in the page's; unknown codes as written."""
    try:
        return Locale.parse(code or "").get_language_name(locale) or (code or "")
    except (ValueError, TypeError, UnknownLocaleError):
        return code or ""

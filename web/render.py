"""Turn highlight offsets into text segments; the template escapes each segment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _HL(Protocol):
    start: int
    end: int
    kind: str


def segments(text: str, highlights: Sequence[_HL], base: int = 0) -> list[tuple[str, str]]:
    """Split ``text`` into (piece, css classes) runs; ``base`` shifts highlight offsets.

    Highlights may nest (query words inside the answer sentence): each character gets the
    union of the kinds covering it, so marks never overlap in the HTML.
    """
    n = len(text)
    if not n:
        return []
    kinds: list[frozenset[str]] = [frozenset()] * n
    for h in highlights:
        a, b = max(0, h.start - base), min(n, h.end - base)
        for i in range(a, b):
            kinds[i] = kinds[i] | {h.kind}
    out: list[tuple[str, str]] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or kinds[i] != kinds[start]:
            cls = " ".join(f"hl-{k}" for k in sorted(kinds[start]))
            out.append((text[start:i], cls))
            start = i
    return out


class _Span:
    def __init__(self, start: int, end: int, kind: str) -> None:
        self.start, self.end, self.kind = start, end, kind


class _Answer(Protocol):
    text: str
    start: int
    span: tuple[int, int] | None


def answer_pieces(answer: _Answer) -> list[tuple[str, str]]:
    """The answer sentence with its short answer span marked."""
    hl = [_Span(answer.span[0], answer.span[1], "span")] if answer.span else []
    return segments(answer.text, hl, answer.start)


# The page speaks French; the API's messages are English. One line per error code.
PAGE_MESSAGES = {
    "empty_query": "la requête est vide",
    "query_too_long": "la requête est trop longue",
    "invalid_parameter": "paramètre invalide",
    "too_many_requests": "trop de questions à la fois ; réessayez dans un instant",
    "index_unavailable": "aucun index n’est servi pour l’instant",
    "article_not_found": "article introuvable",
    "not_found": "page introuvable",
    "method_not_allowed": "méthode non permise",
    "request_too_large": "requête trop volumineuse",
    "uri_too_long": "adresse trop longue",
    "internal_error": "erreur interne",
}


def page_message(code: str, message: str, subject: str | None = None) -> str:
    fr = PAGE_MESSAGES.get(code, message)
    return f"{fr} : « {subject} »" if subject else fr

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


# A card shows this much of its passage around the answer and the query words; the rest is a
# click away. Passages are ~700 characters: whole, they bury the words that matched.
CROP = 280
_MARGIN = 30  # context kept on each side of a highlight, so it never sits at the very edge


def crop(text: str, highlights: Sequence[_HL], width: int = CROP) -> tuple[int, int]:
    """The ``(start, end)`` of ``text`` to show: the whole answer sentence when there is one, and
    as many query-word and filtered-name highlights as fit in ``width`` characters, cut at spaces."""
    n = len(text)
    if n <= width * 5 // 4:  # a click to see a few more words is not worth it
        return 0, n
    terms = [(max(0, h.start), min(n, h.end)) for h in highlights if h.kind in ("term", "entity") and h.start < h.end]
    answer = next(((max(0, h.start), min(n, h.end)) for h in highlights if h.kind == "answer"), None)
    w = min(n, max(width, answer[1] - answer[0] + 2 * _MARGIN)) if answer else width
    focus = answer or (terms[0] if terms else (0, 0))
    mid = (focus[0] + focus[1]) / 2

    def rank(s: int) -> tuple[bool, int, float]:
        e = s + w
        whole = answer is None or (answer[0] >= s and answer[1] <= e)
        return whole, sum(a >= s and b <= e for a, b in terms), -abs(s + w / 2 - mid)

    starts = {0, n - w}
    for a, b in [*terms, focus]:
        starts |= {a - _MARGIN, b + _MARGIN - w, round((a + b - w) / 2)}
    s = max((min(max(0, x), n - w) for x in starts), key=rank)
    # Begin at the sentence or paragraph the first highlight is in, rather than mid-sentence.
    first = min((a for a, _ in [*terms, *([answer] if answer else [])] if s <= a < s + w), default=s)
    head = text[s:first]
    cut = max((head.rfind(m) + len(m) for m in (". ", "! ", "? ", "\n") if m in head), default=0)
    if s + cut + w > n:  # near the end a later start would only show less
        cut = 0
    s += cut
    while s < n and text[s].isspace():
        s += 1
    e = min(n, s + w)
    # Widen to whole words: the cut falls on a space when one is near.
    if not cut and s > 0 and (j := text.rfind(" ", max(0, s - 25), s + 1)) >= 0:
        s = j + 1
    if e < n and (j := text.find(" ", e, e + 25)) >= 0:
        e = j
    return s, e

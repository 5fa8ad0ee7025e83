"""French lexical analysis, applied identically to documents and queries.

lowercase → ligatures (œ→oe, æ→ae) → elision (l', d', qu', jusqu'… with ' or ’) → tokens
(letters/digits; hyphenated names split into parts, grouped digits joined: 170.000 → 170000)
→ stop words dropped → Snowball French stem → accents folded.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

ANALYZER_VERSION = "fr-1"

_ELISION = re.compile(r"\b(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)['’‘`´]", re.I)
_GROUPED_NUM = re.compile(r"(?<=\d)[.\u00a0\u202f ](?=\d{3}\b)")
_TOKEN = re.compile(r"[^\W_]+", re.U)

# Short list on purpose: words like "pas", "plus", "contre" or "sans" carry meaning in queries.
STOP_WORDS = frozenset(
    " ".join(
        [
            "a à au aux avec ce ces cet cette d de des du dans elle elles en et est été être eu il ils",
            "je la le les leur leurs lui ma mais me mes moi mon même ne nos notre nous on ont ou où",
            "par pour qu que qui sa se ses son sont sur ta te tes toi ton tu un une vos votre vous y",
            "c l j m n s t ça cela ceci dont the of and to in is",
        ]
    ).split()
)


def fold(text: str) -> str:
    """Lowercase, expand ligatures and strip accents (for display-independent matching)."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae").replace("ß", "ss")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def _stemmer():  # type: ignore[no-untyped-def]
    import Stemmer

    return Stemmer.Stemmer("french")


def raw_tokens(text: str) -> list[str]:
    """Lowercased words after elision, ligatures and digit grouping; no stemming, no stop words."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae")
    text = _ELISION.sub(" ", text)
    text = _GROUPED_NUM.sub("", text)
    return _TOKEN.findall(text)


@lru_cache(maxsize=500_000)
def _term(word: str) -> str | None:
    """The index term of one lowercased word, or None for a stop word (cached: words repeat)."""
    if word in STOP_WORDS or fold(word) in _FOLDED_STOP:
        return None
    return fold(_stemmer().stemWord(word))


def analyze(text: str) -> list[str]:
    """Index terms of ``text``."""
    return [t for w in raw_tokens(text) if (t := _term(w)) is not None]


_FOLDED_STOP = frozenset(fold(w) for w in STOP_WORDS)


_WORD = re.compile(r"\b\d{1,3}(?:[.\u00a0\u202f ]\d{3})+\b|[^\W_]+")


@lru_cache(maxsize=500_000)
def _word_term(word: str) -> str | None:
    # Cached per surface form: highlighting 50 passages per query analysed every word anew and
    # was most of a search's time (bench/scale.py profile); surface forms repeat a lot.
    words = raw_tokens(word)
    if len(words) == 1:
        return _term(words[0])
    terms = analyze(word)  # grouped digits such as "170.000"
    return terms[0] if terms else None


def term_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, term) of every analysable word in ``text``, offsets into ``text`` itself."""
    out = []
    for m in _WORD.finditer(text):
        term = _word_term(m.group(0))
        if term:
            out.append((m.start(), m.end(), term))
    return out

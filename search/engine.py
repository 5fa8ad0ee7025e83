"""The engine: one loaded index + model, answering ``search(query, k, filters)``.

Retrieval is dense (FAISS) and lexical (BM25 over French terms), fused by reciprocal rank,
then the best fused candidates are rescored by their best-matching sentence, using sentence
embeddings computed at index time (no passage is re-encoded at query time).
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from indexer import layout
from indexer.analysis import analyze, term_spans
from indexer.corpus import normalise_date
from indexer.entities import KINDS, key_of
from indexer.model import Embedder
from indexer.settings import Settings
from search.answer import AnswerFinder, Reading, is_question
from search.candidates import Candidate
from search.runtime import Runtime
from search.store import ChunkInfo, LocalStore, Store, StoreView, Where
from search.types import (
    ENTITY_PAGE_ARTICLES,
    FACET_DEPTH,
    FACET_VALUES,
    GROUP_PASSAGES,
    Answer,
    AnswerStatus,
    ArticleGroup,
    ArticleInfo,
    EntityArticle,
    EntityCount,
    EntityPage,
    EntityPassage,
    Facets,
    FacetValue,
    Filters,
    Highlight,
    Result,
    Scores,
    SearchError,
    SearchResponse,
    Total,
    YearCount,
    passage_id,
)

MODES = ("hybrid", "dense", "lexical")
GROUPS = ("article",)
MAX_OFFSET = 1000
MAX_ENTITY_CHARS = 200
ENTITY_KINDS = tuple(KINDS.values())
# The best passages a question's answer step reads (their sentences are scored, then windows
# around the best of them go to the reader).
ANSWER_PASSAGES = 5


# Added to every rescored candidate's second-stage score, so rescored candidates stay above
# those ranked by fusion alone (whose scores are reciprocal ranks, well under 1).
RESCORED = 10.0


def tied_ranks(scores: list[float]) -> list[int]:
    """1-based ranks of descending ``scores``, equal scores sharing the first one's rank.

    The same text under two ids scores the same (to float noise); numbered 3 and 4 in one list
    and 4 and 3 in the other, they would fuse apart and push a third passage's rank by one, so
    a passage's features would depend on the order its index numbered rows (a rebuild or a
    merge would move scores). Shared ranks keep them equal.
    """
    out: list[int] = []
    for i, sc in enumerate(scores):
        tied = i > 0 and abs(scores[i - 1] - sc) <= 1e-6 * max(1.0, abs(sc))
        out.append(out[-1] if tied else i + 1)
    return out


def open_store(index_dir: Path, settings: Settings, verify: bool = True) -> Store:
    """The served index's store (settings.store), without the networks."""
    if settings.store == "milvus":
        from search.milvus_store import MilvusStore

        return MilvusStore.open(settings)
    return LocalStore.open(Path(index_dir), settings.hnsw_ef_search, verify=verify)


def check_servable(manifest: layout.Manifest, name: str, model_id: str, settings: Settings) -> None:
    """Refuse an index that the model ``model_id`` and these settings cannot search."""
    if manifest.model_id != model_id:
        raise layout.IndexMismatch(
            f"index {name} was built with model {manifest.model_id!r} but the engine runs {model_id!r}; "
            f"rebuild with `salon index` or set SALON_MODEL={manifest.model_name!r}"
        )
    if manifest.sentence_vectors != settings.sentence_vectors:
        raise layout.IndexMismatch(
            f"index {name} has sentence vectors made {manifest.sentence_vectors!r} but the engine "
            f"expects {settings.sentence_vectors!r}; rebuild with `salon index` or set "
            f"SALON_SENTENCE_VECTORS={manifest.sentence_vectors}"
        )


def entity_keys(view: StoreView, kind: str, value: str) -> frozenset[str]:
    """The entity keys a filter value names: its own key and, for a person named by one word,
    every person of the index whose full name ends with that word (« Benioff » → « marc benioff »;
    all of them when several people share the surname)."""
    key = key_of(value.strip())
    if kind == "person" and key and " " not in key:
        return frozenset({key}) | view.person_keys_ending(key)
    return frozenset({key})


def by_article(ranked: list[Candidate]) -> list[list[Candidate]]:
    """Candidates as one list per article, in the order of its best one, each best first."""
    groups: dict[int, list[Candidate]] = {}
    for c in ranked:
        assert c.chunk is not None
        groups.setdefault(c.chunk.article, []).append(c)
    return list(groups.values())


def mention_passages(art: ArticleInfo, chunks: list[ChunkInfo], mentions: list[tuple[int, int]]) -> list[EntityPassage]:
    """The article's passages that hold its ``mentions`` (each mention in the first passage holding
    it whole), in text order, every mention inside one marked as an ``entity`` highlight."""
    chosen: list[ChunkInfo] = []
    for a, b in mentions:
        if any(c.start <= a and b <= c.end for c in chosen):
            continue
        # passages overlap: the first that holds the mention whole, else (across a cut) one it touches
        c = next((c for c in chunks if c.start <= a and b <= c.end), None)
        c = c or next((c for c in chunks if c.start < b and a < c.end), None)
        if c is not None and c not in chosen:
            chosen.append(c)
    out = []
    for c in sorted(chosen, key=lambda c: c.start):
        hl = [
            Highlight(max(a, c.start) - c.start, min(b, c.end) - c.start, "entity")
            for a, b in mentions
            if a < c.end and c.start < b
        ]
        out.append(
            EntityPassage(
                art.doc_id, passage_id(art.doc_id, c.start, c.end), art.text[c.start : c.end], c.start, c.end, hl
            )
        )
    return out


def years_of(counts: dict[str, tuple[int, int]]) -> list[YearCount]:
    """(mentions, articles) per year as a series, oldest first, with the years between at zero
    (only the years that have some when they span over a century)."""
    if not counts:
        return []
    lo, hi = int(min(counts)), int(max(counts))
    years = [str(y) for y in range(lo, hi + 1)] if hi - lo <= 100 else sorted(counts)
    return [YearCount(y, *counts.get(y, (0, 0))) for y in years]


def article_of(view: StoreView, doc_id: str) -> ArticleInfo:
    i = view.article_row(doc_id)
    if i is None:
        raise SearchError("article_not_found", f"no article {doc_id!r}", 404, param="doc_id")
    return view.article(i)


class Engine:
    """Open once, share everywhere; ``search`` is thread-safe (read-only state).

    Everything the ranking reads comes from a store view (local generation files, or Milvus),
    pinned for the length of one search.
    """

    def __init__(self, store: Store, runtime: Runtime, settings: Settings) -> None:
        self.store = store
        self.runtime = runtime
        self.answers = AnswerFinder(settings, runtime)
        self.settings = settings

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        # One settings object for the whole engine: the answer step reads the engine's, so that a
        # caller who swaps them (evaluate: thresholds at 0 to score "never abstaining") moves both.
        self._settings = settings
        self.answers.settings = settings

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls, index_dir: Path, settings: Settings, runtime: Runtime | Embedder | None = None, verify: bool = True
    ) -> Engine:
        """Open the served index (settings.store); refuse one built with another model or format.

        ``runtime``: the networks to search with (a server loads them once and shares them with
        every engine it opens); an Embedder (a caller that just built the index with PyTorch)
        stands for the runtime of its model, prepared from it when missing; None: loaded from
        the prepared files of ``settings.model``."""
        store = open_store(Path(index_dir), settings, verify)
        v = store.view()
        if runtime is None:
            runtime = Runtime.load(settings)
        elif isinstance(runtime, Embedder):
            runtime = Runtime.prepared(runtime, settings)
        check_servable(v.manifest, v.name, runtime.info.model_id, settings)
        if v.manifest.dim != runtime.dim:
            raise layout.IndexMismatch(f"index dimension {v.manifest.dim} ≠ model dimension {runtime.dim}")
        return cls(store, runtime, settings)

    @property
    def manifest(self) -> layout.Manifest:
        return self.store.view().manifest

    @property
    def generation(self) -> Path:
        """The served generation: its folder for the local store, its name for Milvus."""
        v = self.store.view()
        gen = getattr(v, "generation", None)  # a live view answers with its generation's folder
        return gen if isinstance(gen, Path) else Path(v.name)

    @property
    def stamp(self) -> str:
        """What the served results depend on: the generation, and the last write of its live
        segment (search/live.py) when it has one; caches key on it."""
        v = self.store.view()
        return str(getattr(v, "stamp", v.name))

    # -- facts -------------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        return dict(self.manifest.counts)

    def facets(self) -> list[str]:
        """Distinct events (or sources, for articles without an event), for filter menus."""
        return self.store.view().facets()

    def article(self, doc_id: str) -> ArticleInfo:
        return article_of(self.store.view(), doc_id)

    # -- search ------------------------------------------------------------------------------
    def validate(self, query: str, k: int, offset: int) -> str:
        q = (query or "").strip()
        if not q:
            raise SearchError("empty_query", "the query is empty", param="q")
        if len(q) > self.settings.max_query_chars:
            raise SearchError(
                "query_too_long", f"the query is longer than {self.settings.max_query_chars} characters", param="q"
            )
        if not 1 <= k <= self.settings.max_k:
            raise SearchError("invalid_parameter", f"k must be between 1 and {self.settings.max_k}", param="k")
        if not 0 <= offset <= MAX_OFFSET:
            raise SearchError("invalid_parameter", f"offset must be between 0 and {MAX_OFFSET}", param="offset")
        return q

    @staticmethod
    def where(filters: Filters | None, view: StoreView | None = None) -> Where | None:
        """The store-level form of ``filters`` (casefolded event, day bounds, and with ``view``
        the article rows that name every entity asked for), or None."""
        if not filters:
            return None
        articles: frozenset[int] | None = None
        for param, kind, value in filters.entities():
            v = (value or "").strip()
            if not v or len(v) > MAX_ENTITY_CHARS or any(unicodedata.category(c)[0] == "C" for c in v):
                raise SearchError(
                    "invalid_parameter",
                    f"{param}: a name of 1 to {MAX_ENTITY_CHARS} printable characters",
                    param=param,
                )
            if view is not None:
                found = frozenset().union(*(view.entity_articles(kind, k) for k in entity_keys(view, kind, v)))
                articles = found if articles is None else articles & found
        bounds = {}
        for name, given in (("date_from", filters.date_from), ("date_to", filters.date_to)):
            try:
                bounds[name] = normalise_date(given) if given else ""
            except ValueError as exc:
                raise SearchError("invalid_parameter", f"{name}: {exc}", param=name) from exc
        lo, hi = bounds["date_from"], bounds["date_to"]
        from indexer.corpus import date_bounds

        return Where(
            (filters.event or "").casefold(),
            date_bounds(lo)[0] if lo else "",
            date_bounds(hi)[1] if hi else "",
            articles,
        )

    def retrieve(
        self,
        q: str,
        qv: np.ndarray | None,
        mode: str = "hybrid",
        where: Where | None = None,
        depth: int | None = None,
        terms: list[str] | None = None,
        view: StoreView | None = None,
    ) -> list[Candidate]:
        """Candidates ranked by the pipeline for ``mode`` (before de-duplication and paging)."""
        s = self.settings
        v = view or self.store.view()
        depth = depth or s.candidates
        cands: dict[int, Candidate] = {}
        if where is not None and where.articles is not None and not where.articles:
            return []  # a name no article of the index has (as an empty page, not an error)
        if qv is not None and mode != "lexical":
            rows, scores = v.dense(qv, depth, where)
            dense_scores = scores.tolist()
            for r, row, sc in zip(tied_ranks(dense_scores), rows.tolist(), dense_scores, strict=True):
                c = cands.setdefault(row, Candidate(row, Scores()))
                c.scores.dense, c.scores.dense_rank = float(sc), r
                c.scores.fused += s.dense_weight / (s.rrf_k + r)
        if terms is None:
            terms = analyze(q)
        if mode != "dense":
            rows, scores = v.lexical(terms, depth, where)
            lexical_scores = scores.tolist()
            for r, row, sc in zip(tied_ranks(lexical_scores), rows.tolist(), lexical_scores, strict=True):
                c = cands.setdefault(row, Candidate(row, Scores()))
                c.scores.lexical, c.scores.lexical_rank = float(sc), r
                c.scores.fused += s.lexical_weight / (s.rrf_k + r)
        ranked = sorted(cands.values(), key=lambda c: -c.scores.fused)
        for i, c in zip(tied_ranks([c.scores.fused for c in ranked]), ranked, strict=True):
            c.scores.fused_rank = i
            c.scores.final = c.scores.fused
        info = v.chunks([c.row for c in ranked])
        for c in ranked:
            c.chunk = info[c.row]
        if qv is not None and mode == "hybrid":
            self._rescore(v, ranked[: s.rerank_depth], qv, terms)
            self._leads(ranked[: s.rerank_depth])
            ranked.sort(key=lambda c: -c.scores.final)
        elif qv is not None:
            self.load_sentences(v, ranked[:20])
            for c in ranked[:20]:
                self._best_sentence(c, qv)
        return ranked

    def search(
        self,
        query: str,
        k: int = 10,
        offset: int = 0,
        filters: Filters | None = None,
        mode: str = "hybrid",
        answer: bool = True,
        group: str | None = None,
    ) -> SearchResponse:
        """The ranked passages for ``query``; ``group="article"``: the page as one entry per
        article, ``k`` and ``offset`` then counting articles."""
        t0 = time.perf_counter()
        q = self.validate(query, k, offset)
        if mode not in MODES:
            raise SearchError("invalid_parameter", f"mode must be one of {', '.join(MODES)}", param="mode")
        if group is not None and group not in GROUPS:
            raise SearchError("invalid_parameter", f"group must be one of {', '.join(GROUPS)}", param="group")
        v = self.store.view()
        where = self.where(filters, v)
        qv = self.runtime.encode_query(q) if mode != "lexical" else None
        terms = analyze(q)
        depth = max(self.settings.candidates, offset + k)
        ranked, exact = self._ranked(q, qv, mode, where, depth, terms, v)
        groups: list[list[Candidate]] = []
        if group == "article":
            # A page of k articles needs more passages than k: deeper, while retrieval stopped
            # short of the articles the page asks for (twice at most).
            groups = by_article(ranked)
            for _ in range(2):
                if exact or len(groups) >= offset + k:
                    break
                depth *= 4
                ranked, exact = self._ranked(q, qv, mode, where, depth, terms, v)
                groups = by_article(ranked)
            page = [c for g in groups[offset : offset + k] for c in g[:GROUP_PASSAGES]]
        else:
            page = ranked[offset : offset + k]
        qterms = set(terms)
        results = [self._result(v, c, qterms) for c in page]
        self._mark_entities(v, filters, page, results)
        ans: Answer | None = None
        answers: list[Answer] = []
        asked = is_question(q)
        if answer and qv is not None and asked and ranked:
            answers = self.answers.find(q, qv, self.answer_candidates(v, ranked), terms, v)
            ans = answers[0] if answers else None
            if ans is not None:
                for res in results:
                    res.highlights = [h for h in res.highlights if h.kind != "answer"]
                    if res.doc_id == ans.doc_id and res.start <= ans.start and ans.end <= res.end:
                        res.highlights.insert(0, Highlight(ans.start - res.start, ans.end - res.start, "answer"))
            else:
                for res in results:
                    res.highlights = [h for h in res.highlights if h.kind != "answer"]
        status: AnswerStatus
        if not asked:
            status = "not_a_question"
        elif not answer or qv is None:
            status = "skipped"
        else:
            status = "answered" if ans is not None else "declined"
        facets = self.facets_of(v, ranked[:FACET_DEPTH])
        relation: Literal["eq", "gte"] = "eq" if exact else "gte"
        if group == "article":
            entries = self._groups(groups[offset : offset + k], results)
            total = Total(len(groups), relation)
            took = (time.perf_counter() - t0) * 1000
            return SearchResponse(
                q,
                round(took, 2),
                total,
                ans,
                [],
                answers,
                k,
                offset,
                status,
                facets=facets,
                group="article",
                articles=entries,
            )
        total = Total(len(ranked), relation)
        took = (time.perf_counter() - t0) * 1000
        return SearchResponse(q, round(took, 2), total, ans, results, answers, k, offset, status, facets=facets)

    def _ranked(
        self,
        q: str,
        qv: np.ndarray | None,
        mode: str,
        where: Where | None,
        depth: int,
        terms: list[str],
        v: StoreView,
    ) -> tuple[list[Candidate], bool]:
        """The de-duplicated ranking at ``depth``, and whether it holds every passage that matches."""
        ranked = self.retrieve(q, qv, mode, where, depth, terms, v)
        # Exact when retrieval ranked every passage it could reach (it stopped short of its depth);
        # otherwise more passages may match than were ranked.
        exact = len(ranked) < depth or (mode != "lexical" and len(ranked) >= v.manifest.counts.get("chunks", 1 << 62))
        return self._dedupe(ranked), exact

    @staticmethod
    def _groups(groups: list[list[Candidate]], results: list[Result]) -> list[ArticleGroup]:
        """The page's article entries; ``results`` are the first GROUP_PASSAGES of each group, in turn."""
        out, i = [], 0
        for g in groups:
            n = min(len(g), GROUP_PASSAGES)
            passages, i = results[i : i + n], i + n
            best = passages[0]
            out.append(
                ArticleGroup(
                    best.doc_id,
                    best.title,
                    best.event,
                    best.date,
                    best.place,
                    best.source,
                    best.score,
                    passages,
                    len(g),
                    best.url,
                    best.language,
                )
            )
        return out

    @staticmethod
    def _mark_entities(v: StoreView, filters: Filters | None, page: list[Candidate], results: list[Result]) -> None:
        """Add an ``entity`` highlight for each mention of a filtered entity in the page's passages."""
        if not filters or not results:
            return
        wanted: dict[str, set[str]] = {}
        for _, kind, value in filters.entities():
            wanted.setdefault(kind, set()).update(entity_keys(v, kind, value))
        if not wanted:
            return
        rows = {c.chunk.article for c in page if c.chunk is not None}
        spans: dict[int, list[tuple[int, int]]] = {}
        for kind, keys in wanted.items():
            for row, ms in v.mentions(kind, keys, rows).items():
                spans.setdefault(row, []).extend(ms)
        for c, res in zip(page, results, strict=True):
            assert c.chunk is not None
            for a, b in sorted(spans.get(c.chunk.article, ())):
                if a < res.end and res.start < b:
                    res.highlights.append(
                        Highlight(max(a, res.start) - res.start, min(b, res.end) - res.start, "entity")
                    )

    @staticmethod
    def facets_of(v: StoreView, ranked: list[Candidate]) -> Facets:
        """Each value's count of passages in ``ranked`` whose article has it (see Facets)."""
        rows = [c.chunk.article for c in ranked if c.chunk is not None]
        facts = v.facts(sorted(set(rows))) if rows else {}
        counts: dict[str, dict[str, int]] = {f: {} for f in ("person", "organisation", "place", "event", "year")}
        names: dict[tuple[str, str], str] = {}
        for r in rows:
            f = facts[r]
            seen = {(kind, key) for kind, key, _ in f.entities}
            for kind, key, name in f.entities:
                names.setdefault((kind, key), name)  # the name in the best-ranked article
            if f.event:
                seen.add(("event", f.event))
            if re.match(r"\d{4}", f.date):
                seen.add(("year", f.date[:4]))
            for kind, key in seen:
                if kind in counts:
                    counts[kind][key] = counts[kind].get(key, 0) + 1

        def top(kind: str) -> list[FacetValue]:
            c = counts[kind]
            best = sorted(c, key=lambda key: (-c[key], key))[:FACET_VALUES]
            return [FacetValue(names.get((kind, key), key), c[key]) for key in best]

        return Facets(top("person"), top("organisation"), top("place"), top("event"), top("year"))

    def entities(self, kind: str | None = None, prefix: str = "", limit: int = 20) -> list[EntityCount]:
        """The index's entities of ``kind`` (all kinds: None) whose name or one of its words
        starts with ``prefix``, by the number of articles naming them."""
        if kind is not None and kind not in ENTITY_KINDS:
            raise SearchError("invalid_parameter", f"kind must be one of {', '.join(ENTITY_KINDS)}", param="kind")
        if len(prefix) > MAX_ENTITY_CHARS:
            raise SearchError("invalid_parameter", f"q: at most {MAX_ENTITY_CHARS} characters", param="q")
        return self.store.view().entity_counts(kind, key_of(prefix), limit)

    def entity_page(self, kind: str, value: str, limit: int = ENTITY_PAGE_ARTICLES) -> EntityPage:
        """What the index says about the entity ``value`` of ``kind`` (case and accents aside; a
        person's surname alone names every person of that surname): the articles naming it,
        newest first, with the passages that mention it for the first ``limit`` of them, and
        its mentions per year."""
        if kind not in ENTITY_KINDS:
            raise SearchError("invalid_parameter", f"kind must be one of {', '.join(ENTITY_KINDS)}", param="kind")
        key = key_of(value.strip())
        if not key or len(value) > MAX_ENTITY_CHARS:
            raise SearchError("invalid_parameter", f"a name of 1 to {MAX_ENTITY_CHARS} characters", param="value")
        v = self.store.view()
        found = {k: v.entity_articles(kind, k) for k in entity_keys(v, kind, value)}
        keys = sorted(k for k, rows in found.items() if rows) or [key]
        rows = frozenset().union(*found.values())
        mentions = v.mentions(kind, keys) if rows else {}
        arts = {r: v.article(r) for r in rows}
        order = sorted(rows, key=lambda r: (arts[r].date, arts[r].doc_id), reverse=True)
        entries = []
        per_year: dict[str, tuple[int, int]] = {}
        undated = 0
        for i, r in enumerate(order):
            art, ms = arts[r], mentions.get(r, [])
            passages = mention_passages(art, v.article_chunks(r), ms) if i < limit else []
            entries.append(EntityArticle(art, len(ms), passages))
            if re.match(r"\d{4}", art.date):
                m, n = per_year.get(art.date[:4], (0, 0))
                per_year[art.date[:4]] = (m + len(ms), n + 1)
            else:
                undated += len(ms)
        name = value.strip()
        if len(keys) == 1:
            name = next((e.value for e in v.entity_counts(kind, keys[0], 50) if e.key == keys[0]), name)
        return EntityPage(
            kind, name, keys, entries, sum(len(m) for m in mentions.values()), years_of(per_year), undated
        )

    def readings(self, query: str, gate: bool = True) -> list[Reading]:
        """The reader's readings of question ``query`` as a default search makes them (hybrid,
        no filters), best confidence first; ``gate=False``: every window, as evaluation reads
        them. For evaluation and tests: search itself keeps only the answers."""
        v = self.store.view()
        qv = self.runtime.encode_query(query)
        terms = analyze(query)
        ranked = self._dedupe(self.retrieve(query, qv, "hybrid", None, self.settings.candidates, terms, v))
        return self.answers.readings(query, qv, self.answer_candidates(v, ranked), terms, v, gate=gate)

    # -- stages ------------------------------------------------------------------------------
    def answer_candidates(self, v: StoreView, ranked: list[Candidate]) -> list[Candidate]:
        """The passages the answer step reads (the best ``ANSWER_PASSAGES``), their sentences loaded."""
        cands = ranked[:ANSWER_PASSAGES]
        self.load_sentences(v, cands)
        return cands

    @staticmethod
    def load_sentences(v: StoreView, cands: list[Candidate]) -> None:
        """Fetch, in one store call, the sentences of the candidates that lack them."""
        need = [c for c in cands if c.sentences is None and c.chunk is not None]
        if need:
            got = v.sentences([c.chunk for c in need if c.chunk is not None])
            for c in need:
                c.sentences = got[c.row]

    def _best_sentence(self, c: Candidate, qv: np.ndarray) -> np.ndarray:
        """Mark the chunk's best sentence on ``c``; return all its sentences' similarities."""
        sv = c.sentences
        assert sv is not None
        sims: np.ndarray = sv.vectors @ qv
        j = int(np.argmax(sims))
        c.best_sentence = sv.rows[j]
        c.best_span = (sv.starts[j], sv.ends[j])
        c.scores.sentence = float(sims[j])
        return sims

    FEATURES = (
        "dense",
        "sentence",
        "lexical_norm",
        "sentence_coverage",
        "fused_rrank",
        "chunk_coverage",
        "second_sentence",
        "lexical_rrank",
        "dense_rrank",
    )

    def features(
        self, c: Candidate, qv: np.ndarray, qterms: dict[str, float], lex_max: float, dense: float | None = None
    ) -> np.ndarray:
        """Second-stage features of a candidate (see FEATURES), each roughly in [0, 1]."""
        sims = np.sort(self._best_sentence(c, qv))
        second = float(sims[-2]) if len(sims) > 1 else float(sims[-1])
        if c.scores.dense is not None:
            dense = c.scores.dense
        lex = (c.scores.lexical or 0.0) / lex_max if lex_max > 0 else 0.0
        # IDF-weighted share of the query's terms found in the best-covering sentence, and in the
        # whole chunk: questions are usually answered by one sentence, not spread over a passage.
        cover = chunk_cover = 0.0
        total = sum(qterms.values())
        if total > 0 and c.sentences is not None:
            seen: set[str] = set()
            for j in range(len(c.sentences.texts)):
                terms = c.sentences.term_set(j)
                seen |= terms
                cover = max(cover, sum(w for t, w in qterms.items() if t in terms) / total)
            chunk_cover = sum(w for t, w in qterms.items() if t in seen) / total
        return np.array(
            [
                dense or 0.0,
                c.scores.sentence,
                lex,
                cover,
                1.0 / (c.scores.fused_rank or 1),
                chunk_cover,
                second,
                1.0 / c.scores.lexical_rank if c.scores.lexical_rank else 0.0,
                1.0 / c.scores.dense_rank if c.scores.dense_rank else 0.0,
            ],
            dtype=np.float32,
        )

    @staticmethod
    def query_term_weights(v: StoreView, terms: list[str]) -> dict[str, float]:
        n = max(1, v.n_chunks)
        return {t: float(np.log(1 + (n - df + 0.5) / (df + 0.5))) for t, df in v.doc_freq(set(terms)).items()}

    def _rescore(self, v: StoreView, top: list[Candidate], qv: np.ndarray, terms: list[str]) -> None:
        # A linear second stage over features fitted on the fit half of PIAF dev (docs/quality.md);
        # chunks outside the rescored depth keep their fused order below the rescored ones.
        if not top:
            return
        self.load_sentences(v, top)
        qterms = self.query_term_weights(v, terms)
        lex_max = max((c.scores.lexical or 0.0) for c in top)
        # lexical-only candidates have no dense score yet: their stored vectors, in one call
        missing = [c.row for c in top if c.scores.dense is None]
        dense = dict(zip(missing, (v.chunk_vectors(missing) @ qv).tolist(), strict=True)) if missing else {}
        w = np.asarray(self.settings.rerank_weights, dtype=np.float32)
        for c in top:
            c.features = self.features(c, qv, qterms, lex_max, dense.get(c.row))
            c.scores.final = RESCORED + float(c.features @ w)

    @staticmethod
    def _leads(top: list[Candidate]) -> None:
        """How far each rescored candidate leads the best one of another article: the answer
        confidence's evidence that this is the article that answers. Over all rescored
        candidates, not only those read, since the top few often share one article."""
        best: dict[int, float] = {}
        for c in top:
            assert c.chunk is not None
            best[c.chunk.article] = max(best.get(c.chunk.article, -math.inf), c.scores.final)
        floor = min((c.scores.final for c in top), default=0.0)
        for c in top:
            assert c.chunk is not None
            others = [sc for a, sc in best.items() if a != c.chunk.article]
            lead = c.scores.final - (max(others) if others else floor)  # one article: against its weakest
            c.evidence = (c.scores.final - RESCORED, lead)

    @staticmethod
    def _dedupe(ranked: list[Candidate]) -> list[Candidate]:
        """Drop a chunk overlapping a better-ranked chunk of the same article."""
        kept: list[Candidate] = []
        spans: dict[int, list[tuple[int, int]]] = {}
        for c in ranked:
            assert c.chunk is not None
            a, st, en = c.chunk.article, c.chunk.start, c.chunk.end
            if any(st < e and s < en for s, e in spans.get(a, [])):
                continue
            spans.setdefault(a, []).append((st, en))
            kept.append(c)
        return kept

    def _result(self, v: StoreView, c: Candidate, qterms: set[str]) -> Result:
        assert c.chunk is not None
        art = v.article(c.chunk.article)
        st, en = c.chunk.start, c.chunk.end
        passage = art.text[st:en]
        hl: list[Highlight] = []
        if c.best_sentence >= 0:
            hl.append(Highlight(c.best_span[0] - st, c.best_span[1] - st, "answer"))
        for a, b, term in term_spans(passage):
            if term in qterms:
                hl.append(Highlight(a, b, "term"))
        return Result(
            art.doc_id,
            passage_id(art.doc_id, st, en),
            art.title,
            art.event,
            art.date,
            art.place,
            art.source,
            round(c.scores.final, 6),
            passage,
            st,
            en,
            hl,
            c.scores,
            art.url,
            art.language,
        )

    def describe(self) -> dict[str, Any]:
        v = self.store.view()
        m = v.manifest
        return {
            "generation": v.name,
            "store": self.settings.store,
            "model": m.model_id,
            "built_at": m.built_at,
            "counts": m.counts,
            "format_version": m.format_version,
            "ann": m.ann,
            "runtime": "onnx",
        }

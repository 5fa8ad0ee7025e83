"""The engine: one loaded index + model, answering ``search(query, k, filters)``.

Retrieval is dense (FAISS) and lexical (BM25 over French terms), fused by reciprocal rank,
then the best fused candidates are rescored by their best-matching sentence, using sentence
embeddings computed at index time (no passage is re-encoded at query time).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer import layout
from indexer.analysis import analyze, term_spans
from indexer.corpus import normalise_date
from indexer.model import Embedder
from indexer.settings import Settings
from search.answer import AnswerFinder, is_question
from search.types import (
    Answer,
    ArticleInfo,
    Filters,
    Highlight,
    Result,
    Scores,
    SearchError,
    SearchResponse,
)

MODES = ("hybrid", "dense", "lexical")


@dataclass
class _Candidate:
    row: int
    scores: Scores
    best_sentence: int = -1
    features: np.ndarray | None = None


class Engine:
    """Open once, share everywhere; ``search`` is thread-safe (read-only state)."""

    def __init__(self, generation: Path, manifest: layout.Manifest, embedder: Embedder, settings: Settings) -> None:
        import bm25s
        import faiss

        self.generation = generation
        self.manifest = manifest
        self.embedder = embedder
        self.settings = settings
        self.dense = faiss.read_index(str(generation / layout.DENSE))
        # Kept in fp16 as stored (half the memory: 440 MB less at 283k paragraphs); the few
        # rows a query compares are widened to fp32 on the fly.
        self.sent_vecs = np.load(generation / layout.SENTENCES)
        self.lexical = bm25s.BM25.load(str(generation / layout.LEXICAL), show_progress=False)
        self.vocab: dict[str, int] = dict(self.lexical.vocab_dict)
        indptr = np.asarray(self.lexical.scores["indptr"])
        counts = np.diff(indptr)
        self.doc_freq = {t: int(counts[i]) for t, i in self.vocab.items() if i < len(counts)}
        db = sqlite3.connect(f"file:{generation / layout.STORE}?mode=ro", uri=True)
        try:
            arts = db.execute(
                "SELECT row, id, title, date, date_min, date_max, event, place, source, "
                "language, url, text FROM articles ORDER BY row"
            ).fetchall()
            chunks = np.array(
                db.execute(
                    "SELECT article, start, end, first_sentence, last_sentence FROM chunks ORDER BY row"
                ).fetchall(),
                dtype=np.int64,
            ).reshape(-1, 5)
            sents = np.array(
                db.execute("SELECT article, start, end FROM sentences ORDER BY row").fetchall(), dtype=np.int64
            ).reshape(-1, 3)
        finally:
            db.close()
        self.articles = [
            ArticleInfo(
                a[1], a[2] or "", a[3] or "", a[6] or "", a[7] or "", a[8] or "", a[9] or "", a[10] or "", a[11]
            )
            for a in arts
        ]
        self.article_dates = [(a[4] or "", a[5] or "") for a in arts]
        self.by_id = {a.id: i for i, a in enumerate(self.articles)}
        self.chunk_article, self.chunk_start, self.chunk_end = chunks[:, 0], chunks[:, 1], chunks[:, 2]
        self.chunk_first, self.chunk_last = chunks[:, 3], chunks[:, 4]
        self.sent_article, self.sent_start, self.sent_end = sents[:, 0], sents[:, 1], sents[:, 2]
        if self.dense.ntotal != len(chunks) or len(self.sent_vecs) != len(sents):
            raise layout.IndexCorrupt(f"index {generation.name}: vector and store counts differ; rebuild")
        self.answers = AnswerFinder(self)
        embedder.query_encoder()  # export/load the fast query path now, not on the first query

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, index_dir: Path, settings: Settings, embedder: Embedder | None = None, verify: bool = True) -> Engine:
        """Open the served generation; refuse one built with another model or format."""
        gen = layout.current_generation(Path(index_dir))
        manifest = layout.Manifest.read(gen)
        if embedder is None:
            embedder = Embedder.from_settings(settings, use_cache=False)
        if manifest.model_id != embedder.info.model_id:
            raise layout.IndexMismatch(
                f"index {gen.name} was built with model {manifest.model_id!r} but the engine runs "
                f"{embedder.info.model_id!r}; rebuild with `salon index` or set SALON_MODEL="
                f"{manifest.model_name!r}"
            )
        if manifest.sentence_vectors != settings.sentence_vectors:
            raise layout.IndexMismatch(
                f"index {gen.name} has sentence vectors made {manifest.sentence_vectors!r} but the engine "
                f"expects {settings.sentence_vectors!r}; rebuild with `salon index` or set "
                f"SALON_SENTENCE_VECTORS={manifest.sentence_vectors}"
            )
        if manifest.dim != embedder.dim:
            raise layout.IndexMismatch(f"index dimension {manifest.dim} ≠ model dimension {embedder.dim}")
        if verify:
            layout.verify(gen, manifest)
        return cls(gen, manifest, embedder, settings)

    # -- facts -------------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        return dict(self.manifest.counts)

    def facets(self) -> list[str]:
        """Distinct events (or sources, for articles without an event), for filter menus."""
        return sorted({a.event or a.source for a in self.articles if a.event or a.source})

    def article(self, doc_id: str) -> ArticleInfo:
        i = self.by_id.get(doc_id)
        if i is None:
            raise SearchError("article_not_found", f"aucun article « {doc_id} » / no article {doc_id!r}", 404)
        return self.articles[i]

    # -- search ------------------------------------------------------------------------------
    def validate(self, query: str, k: int, offset: int) -> str:
        q = (query or "").strip()
        if not q:
            raise SearchError("empty_query", "la requête est vide / the query is empty")
        if len(q) > self.settings.max_query_chars:
            raise SearchError(
                "query_too_long",
                f"la requête dépasse {self.settings.max_query_chars} "
                f"caractères / the query is longer than {self.settings.max_query_chars} characters",
            )
        if not 1 <= k <= self.settings.max_k:
            raise SearchError(
                "k_out_of_range",
                f"k doit être entre 1 et {self.settings.max_k} / k must be between 1 and {self.settings.max_k}",
            )
        if not 0 <= offset <= 1000:
            raise SearchError(
                "offset_out_of_range", "offset doit être entre 0 et 1000 / offset must be between 0 and 1000"
            )
        return q

    def _mask(self, filters: Filters | None) -> np.ndarray | None:
        if not filters:
            return None
        try:
            lo = normalise_date(filters.date_from) if filters.date_from else ""
            hi = normalise_date(filters.date_to) if filters.date_to else ""
        except ValueError as exc:
            raise SearchError("bad_date", f"date invalide / invalid date: {exc}") from exc
        from indexer.corpus import date_bounds

        lo_day = date_bounds(lo)[0] if lo else ""
        hi_day = date_bounds(hi)[1] if hi else ""
        ok = np.ones(len(self.articles), dtype=bool)
        for i, a in enumerate(self.articles):
            if filters.event:
                want = filters.event.casefold()
                if want not in (a.event.casefold(), a.source.casefold()):
                    ok[i] = False
                    continue
            dmin, dmax = self.article_dates[i]
            if (lo_day or hi_day) and (not dmin or (lo_day and dmax < lo_day) or (hi_day and dmin > hi_day)):
                ok[i] = False
        mask: np.ndarray = ok[self.chunk_article]
        return mask

    def _dense(self, qv: np.ndarray, n: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        n = min(n, self.dense.ntotal)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        hnsw = isinstance(self.dense, faiss.IndexHNSW)
        ef = max(self.settings.hnsw_ef_search, n)
        params: Any = faiss.SearchParametersHNSW(efSearch=ef) if hnsw else None  # type: ignore[attr-defined,call-arg]
        if mask is not None:
            ids = np.flatnonzero(mask).astype(np.int64)
            if len(ids) == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            n = min(n, len(ids))
            if hnsw and len(ids) <= 20_000:
                # A narrow filter starves the graph walk of admissible neighbours (recall falls);
                # scoring the admitted vectors exactly is both exact and fast at this size.
                sims = self.dense.reconstruct_batch(ids) @ qv
                top = np.argsort(-sims, kind="stable")[:n]
                return ids[top], sims[top].astype(np.float32)
            sel = faiss.IDSelectorBatch(ids)
            params = (
                faiss.SearchParametersHNSW(sel=sel, efSearch=ef)  # type: ignore[attr-defined,call-arg]
                if hnsw
                else faiss.SearchParameters(sel=sel)  # type: ignore[attr-defined,call-arg]
            )
        scores, rows = self.dense.search(qv.reshape(1, -1), n, params=params)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]

    def _lexical(self, terms: list[str], n: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        known = [t for t in terms if t in self.vocab]
        if not known:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = np.asarray(self.lexical.get_scores(known), dtype=np.float32)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        n = min(n, int((scores > 0).sum()))
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return top.astype(np.int64), scores[top]

    def retrieve(
        self,
        q: str,
        qv: np.ndarray | None,
        mode: str = "hybrid",
        mask: np.ndarray | None = None,
        depth: int | None = None,
        terms: list[str] | None = None,
    ) -> list[_Candidate]:
        """Candidates ranked by the pipeline for ``mode`` (before de-duplication and paging)."""
        s = self.settings
        depth = depth or s.candidates
        cands: dict[int, _Candidate] = {}
        if qv is not None and mode != "lexical":
            rows, scores = self._dense(qv, depth, mask)
            for r, (row, sc) in enumerate(zip(rows.tolist(), scores.tolist(), strict=True), 1):
                c = cands.setdefault(row, _Candidate(row, Scores()))
                c.scores.dense, c.scores.dense_rank = float(sc), r
                c.scores.fused += s.dense_weight / (s.rrf_k + r)
        if terms is None:
            terms = analyze(q)
        if mode != "dense":
            rows, scores = self._lexical(terms, depth, mask)
            for r, (row, sc) in enumerate(zip(rows.tolist(), scores.tolist(), strict=True), 1):
                c = cands.setdefault(row, _Candidate(row, Scores()))
                c.scores.lexical, c.scores.lexical_rank = float(sc), r
                c.scores.fused += s.lexical_weight / (s.rrf_k + r)
        ranked = sorted(cands.values(), key=lambda c: -c.scores.fused)
        for i, c in enumerate(ranked, 1):
            c.scores.fused_rank = i
            c.scores.final = c.scores.fused
        if qv is not None and mode == "hybrid":
            self._rescore(ranked[: s.rerank_depth], qv, terms)
            ranked.sort(key=lambda c: -c.scores.final)
        elif qv is not None:
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
    ) -> SearchResponse:
        t0 = time.perf_counter()
        q = self.validate(query, k, offset)
        if mode not in MODES:
            raise SearchError("bad_mode", f"mode must be one of {', '.join(MODES)}")
        mask = self._mask(filters)
        qv = self.embedder.encode_query(q) if mode != "lexical" else None
        terms = analyze(q)
        ranked = self.retrieve(q, qv, mode, mask, max(self.settings.candidates, offset + k), terms)
        ranked = self._dedupe(ranked)
        page = ranked[offset : offset + k]
        qterms = set(terms)
        results = [self._result(c, qterms) for c in page]
        ans: Answer | None = None
        answers: list[Answer] = []
        if answer and qv is not None and is_question(q) and ranked:
            answers = self.answers.find(q, qv, ranked[:5], terms)
            ans = answers[0] if answers else None
            if ans is not None:
                for res in results:
                    res.highlights = [h for h in res.highlights if h.kind != "answer"]
                    if res.doc_id == ans.doc_id and res.start <= ans.start and ans.end <= res.end:
                        res.highlights.insert(
                            0, Highlight(ans.start - res.start, ans.end - res.start, "answer", round(ans.score, 4))
                        )
            else:
                for res in results:
                    res.highlights = [h for h in res.highlights if h.kind != "answer"]
        took = (time.perf_counter() - t0) * 1000
        return SearchResponse(q, round(took, 2), len(ranked), ans, results, answers)

    # -- stages ------------------------------------------------------------------------------
    def _best_sentence(self, c: _Candidate, qv: np.ndarray) -> np.ndarray:
        """Mark the chunk's best sentence on ``c``; return all its sentences' similarities."""
        lo, hi = int(self.chunk_first[c.row]), int(self.chunk_last[c.row]) + 1
        sims: np.ndarray = self.sent_vecs[lo:hi].astype(np.float32) @ qv
        j = int(np.argmax(sims))
        c.best_sentence = lo + j
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

    def features(self, c: _Candidate, qv: np.ndarray, qterms: dict[str, float], lex_max: float) -> np.ndarray:
        """Second-stage features of a candidate (see FEATURES), each roughly in [0, 1]."""
        lo, hi = int(self.chunk_first[c.row]), int(self.chunk_last[c.row]) + 1
        sims = np.sort(self._best_sentence(c, qv))
        second = float(sims[-2]) if len(sims) > 1 else float(sims[-1])
        dense = c.scores.dense if c.scores.dense is not None else float(self.dense.reconstruct(int(c.row)) @ qv)
        lex = (c.scores.lexical or 0.0) / lex_max if lex_max > 0 else 0.0
        # IDF-weighted share of the query's terms found in the best-covering sentence, and in the
        # whole chunk: questions are usually answered by one sentence, not spread over a passage.
        cover = chunk_cover = 0.0
        total = sum(qterms.values())
        if total > 0:
            art = self.articles[int(self.chunk_article[c.row])].text
            seen: set[str] = set()
            for j in range(lo, hi):
                terms = set(analyze(art[int(self.sent_start[j]) : int(self.sent_end[j])]))
                seen |= terms
                cover = max(cover, sum(w for t, w in qterms.items() if t in terms) / total)
            chunk_cover = sum(w for t, w in qterms.items() if t in seen) / total
        return np.array(
            [
                dense,
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

    def query_term_weights(self, terms: list[str]) -> dict[str, float]:
        n = max(1, self.dense.ntotal)
        return {
            t: float(np.log(1 + (n - df + 0.5) / (df + 0.5))) for t in set(terms) for df in [self.doc_freq.get(t, 0)]
        }

    def _rescore(self, top: list[_Candidate], qv: np.ndarray, terms: list[str]) -> None:
        # A linear second stage over features fitted on held-out questions (bench/tune.py);
        # chunks outside the rescored depth keep their fused order below the rescored ones.
        if not top:
            return
        qterms = self.query_term_weights(terms)
        lex_max = max((c.scores.lexical or 0.0) for c in top)
        w = np.asarray(self.settings.rerank_weights, dtype=np.float32)
        for c in top:
            c.features = self.features(c, qv, qterms, lex_max)
            c.scores.final = 10.0 + float(c.features @ w)

    def _dedupe(self, ranked: list[_Candidate]) -> list[_Candidate]:
        """Drop a chunk overlapping a better-ranked chunk of the same article."""
        kept: list[_Candidate] = []
        spans: dict[int, list[tuple[int, int]]] = {}
        for c in ranked:
            a = int(self.chunk_article[c.row])
            st, en = int(self.chunk_start[c.row]), int(self.chunk_end[c.row])
            if any(st < e and s < en for s, e in spans.get(a, [])):
                continue
            spans.setdefault(a, []).append((st, en))
            kept.append(c)
        return kept

    def _result(self, c: _Candidate, qterms: set[str]) -> Result:
        art = self.articles[int(self.chunk_article[c.row])]
        st, en = int(self.chunk_start[c.row]), int(self.chunk_end[c.row])
        passage = art.text[st:en]
        hl: list[Highlight] = []
        if c.best_sentence >= 0:
            hl.append(
                Highlight(
                    int(self.sent_start[c.best_sentence]) - st,
                    int(self.sent_end[c.best_sentence]) - st,
                    "answer",
                    round(c.scores.sentence or 0.0, 4),
                )
            )
        for a, b, term in term_spans(passage):
            if term in qterms:
                hl.append(Highlight(a, b, "term", 1.0))
        return Result(
            art.id,
            int(c.row),
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
        )

    def describe(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "generation": self.generation.name,
            "model": m.model_id,
            "built_at": m.built_at,
            "counts": m.counts,
            "format_version": m.format_version,
            "ann": m.ann,
            "precision": self.embedder.precision,
            "query_runtime": "onnx" if self.embedder.query_encoder() is not None else "torch",
        }

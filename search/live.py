"""Searching the served generation and the live segment as one index.

``LiveView`` is a ``StoreView`` over a generation (``LocalStore``) and a live segment snapshot
(indexer/live.py): rows past the generation's are the segment's, the generation's copies of
replaced or deleted articles are hidden, and the segment's BM25 scores use the generation's
statistics (document count, document frequencies, average length), so the two rank on one
scale and fuse as one list. ``LiveStore`` pairs the two and swaps them together.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from indexer.live import LiveSegment
from search.store import ChunkInfo, LocalStore, Sentences, Where, count_entities
from search.types import ArticleFacts, ArticleInfo, EntityCount

# bm25s's defaults, which write_lexical builds with (method "lucene")
K1, B = 1.5, 0.75


def _info(a: Any) -> ArticleInfo:
    return ArticleInfo(a.id, a.title, a.date, a.event, a.place, a.source, a.language, a.url, a.text)


class LiveView:
    """One generation and one live snapshot, read-only (see the module's docstring)."""

    def __init__(self, base: LocalStore, seg: LiveSegment) -> None:
        self.base = base
        self.seg = seg
        self.name = base.name
        self.stamp = f"{base.name}+{seg.seq}"  # what caches key on: changes with every write
        self.na = len(base.articles)
        self.nc = base.n_chunks
        self.ns = len(base.sent_start)
        d = seg.data
        self.chunk_meta = d.chunk_meta.array[: seg.n_chunks]
        self.sent_meta = d.sent_meta.array[: seg.n_sentences]
        self.chunk_vecs = d.chunk_vecs.array[: seg.n_chunks]
        self.sent_vecs = d.sent_vecs.array[: seg.n_sentences]
        self.chunk_len = d.chunk_len.array[: seg.n_chunks, 0]
        self.articles = d.articles[: seg.n_articles]
        self.alive = seg.alive()
        self.alive_chunks = self.alive[self.chunk_meta[:, 0]] if seg.n_chunks else np.zeros(0, bool)
        # the generation's rows this snapshot hides: replaced or deleted articles
        hidden = [r for i in seg.shadowed if (r := base.by_id.get(i)) is not None]
        self.hidden_articles = frozenset(hidden)
        self.hidden_chunks = (
            np.flatnonzero(np.isin(base.chunk_article, np.array(hidden, dtype=np.int64)))
            if hidden
            else np.zeros(0, np.int64)
        )
        self.n_chunks = self.nc + int(self.alive_chunks.sum())
        counts = dict(base.manifest.counts)
        counts["articles"] = counts.get("articles", self.na) - len(hidden) + seg.live_articles
        counts["chunks"] = self.nc - len(self.hidden_chunks) + int(self.alive_chunks.sum())
        self.manifest = replace(base.manifest, counts=counts)
        # BM25 statistics of the generation; its average chunk length where the manifest has it
        tokens = base.manifest.counts.get("lexical_tokens", 0)
        if tokens and self.nc:
            self.avgdl = tokens / self.nc
        else:  # a generation built before the manifest counted them: the segment's own
            self.avgdl = float(self.chunk_len.mean()) if len(self.chunk_len) else 1.0

    def __getattr__(self, name: str) -> Any:
        # what the engine asks of a generation that the segment adds nothing to
        return getattr(self.base, name)

    # -- filters -------------------------------------------------------------------------------
    def _split(self, where: Where | None) -> tuple[Where | None, np.ndarray]:
        """The filter for the generation's rows, and the live chunks it (and liveness) admits."""
        ok = self.alive.copy()
        base_where = where
        if where is not None:
            for r, a in enumerate(self.articles):
                if ok[r]:
                    ok[r] = where.admits(a.event, a.source, *a.date_range)
            if where.articles is not None:
                allowed = np.zeros(len(self.articles), dtype=bool)
                mine = [r - self.na for r in where.articles if r >= self.na]
                allowed[mine] = True
                ok &= allowed
                base_where = replace(where, articles=frozenset(r for r in where.articles if r < self.na))
        chunks = ok[self.chunk_meta[:, 0]] if len(self.chunk_meta) else np.zeros(0, bool)
        return base_where, chunks

    def _merge(
        self, base: tuple[np.ndarray, np.ndarray], live_rows: np.ndarray, live_scores: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = base
        if len(self.hidden_chunks):
            keep = ~np.isin(rows, self.hidden_chunks)
            rows, scores = rows[keep], scores[keep]
        rows = np.concatenate([rows.astype(np.int64), live_rows.astype(np.int64) + self.nc])
        scores = np.concatenate([scores.astype(np.float32), live_scores.astype(np.float32)])
        order = np.lexsort((rows, -scores))[:n]  # ties by row, as the stores break them
        return rows[order], scores[order]

    # -- retrieval -----------------------------------------------------------------------------
    def dense(self, qv: np.ndarray, n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        base_where, ok = self._split(where)
        got = self.base.dense(qv, n + len(self.hidden_chunks), base_where)
        ids = np.flatnonzero(ok)
        sims = self.chunk_vecs[ids] @ qv if len(ids) else np.zeros(0, np.float32)
        top = np.argsort(-sims, kind="stable")[:n]
        return self._merge(got, ids[top], sims[top], n)

    def lexical(self, terms: list[str], n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        base_where, ok = self._split(where)
        got = self.base.lexical(terms, n + len(self.hidden_chunks), base_where)
        scores = np.zeros(len(self.chunk_meta), dtype=np.float32)
        if len(scores):
            df = self.base.doc_freq(set(terms))
            norm = K1 * ((1 - B) + B * self.chunk_len / self.avgdl)
            for t in terms:  # repeated terms count again, as bm25s counts them
                posts = self._postings(t)
                if not len(posts):
                    continue
                idf = math.log(1 + (self.nc - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5))
                rows, tfs = posts[:, 0], posts[:, 1].astype(np.float32)
                scores[rows] += idf * tfs / (norm[rows] + tfs)
            scores = np.where(ok, scores, 0.0)
        ids = np.flatnonzero(scores > 0)
        top = ids[np.lexsort((ids, -scores[ids]))][:n]
        return self._merge(got, top, scores[top], n)

    def _postings(self, term: str) -> np.ndarray:
        """(chunk row, tf) of ``term`` in this snapshot's chunks."""
        p = self.seg.data.postings.get(term)
        if p is None:
            return np.zeros((0, 2), np.int64)
        got = p.rows()
        return got[got[:, 0] < len(self.chunk_meta)]

    def doc_freq(self, terms: Iterable[str]) -> dict[str, int]:
        terms = set(terms)
        df = self.base.doc_freq(terms)
        for t in terms:
            df[t] = df.get(t, 0) + len(self._postings(t))
        return df

    # -- rows ----------------------------------------------------------------------------------
    def chunks(self, rows: Sequence[int]) -> dict[int, ChunkInfo]:
        out = self.base.chunks([r for r in rows if r < self.nc])
        for r in rows:
            if r >= self.nc:
                a, st, en, f, la = self.chunk_meta[r - self.nc].tolist()
                out[r] = ChunkInfo(r, self.na + a, st, en, self.ns + f, self.ns + la)
        return out

    def chunk_vectors(self, rows: Sequence[int]) -> np.ndarray:
        rows = list(rows)
        out = np.empty((len(rows), self.chunk_vecs.shape[1]), dtype=np.float32)
        mine = [i for i, r in enumerate(rows) if r < self.nc]
        if mine:
            out[mine] = self.base.chunk_vectors([rows[i] for i in mine])
        for i, r in enumerate(rows):
            if r >= self.nc:
                out[i] = self.chunk_vecs[r - self.nc]
        return out

    def sentences(self, chunks: Sequence[ChunkInfo]) -> dict[int, Sentences]:
        out = self.base.sentences([c for c in chunks if c.row < self.nc])
        terms = self.seg.data.sent_terms
        for c in chunks:
            if c.row < self.nc:
                continue
            lo, hi = c.first_sentence - self.ns, c.last_sentence - self.ns + 1
            text = self.articles[c.article - self.na].text
            meta = self.sent_meta[lo:hi]
            starts, ends = tuple(meta[:, 1].tolist()), tuple(meta[:, 2].tolist())
            out[c.row] = Sentences(
                tuple(range(c.first_sentence, c.last_sentence + 1)),
                c.article,
                starts,
                ends,
                tuple(text[s:e] for s, e in zip(starts, ends, strict=True)),
                self.sent_vecs[lo:hi].astype(np.float32),
                tuple(terms[lo:hi]),
            )
        return out

    # -- articles and entities -----------------------------------------------------------------
    def article(self, row: int) -> ArticleInfo:
        return self.base.article(row) if row < self.na else _info(self.articles[row - self.na])

    def article_row(self, doc_id: str) -> int | None:
        if (r := self.seg.by_id.get(doc_id)) is not None:
            return self.na + r
        return None if doc_id in self.seg.shadowed else self.base.article_row(doc_id)

    def facets(self) -> list[str]:
        names = {a.event or a.source for i, a in enumerate(self.base.articles) if i not in self.hidden_articles}
        names |= {a.event or a.source for r, a in enumerate(self.articles) if self.alive[r]}
        return sorted(n for n in names if n)

    def facts(self, rows: Sequence[int]) -> dict[int, ArticleFacts]:
        out = self.base.facts([r for r in rows if r < self.na])
        for r in rows:
            if r >= self.na:
                a = self.articles[r - self.na]
                out[r] = ArticleFacts(a.event, a.date, self.seg.data.entities[r - self.na])
        return out

    def entity_articles(self, kind: str, key: str) -> frozenset[int]:
        found = set(self.base.entity_articles(kind, key)) - self.hidden_articles
        n = len(self.alive)
        found |= {self.na + r for r in self.seg.data.entity_rows.get((kind, key), ()) if r < n and self.alive[r]}
        return frozenset(found)

    def person_keys_ending(self, word: str) -> frozenset[str]:
        ents = self.seg.data.entities
        mine = {
            key
            for r in np.flatnonzero(self.alive).tolist()
            for k, key, _ in ents[r]
            if k == "person" and len(key.split()) > 1 and key.split()[-1] == word
        }
        return self.base.person_keys_ending(word) | mine

    def mentions(
        self, kind: str, keys: Iterable[str], rows: Iterable[int] | None = None
    ) -> dict[int, list[tuple[int, int]]]:
        keys = set(keys)
        want = None if rows is None else set(rows)
        base_rows = None if want is None else [r for r in want if r < self.na]
        out = {r: m for r, m in self.base.mentions(kind, keys, base_rows).items() if r not in self.hidden_articles}
        d = self.seg.data
        for r in np.flatnonzero(self.alive).tolist():
            if want is not None and self.na + r not in want:
                continue
            found = sorted(
                m
                for (k, key, _), ms in zip(d.entities[r], d.mentions[r], strict=True)
                if k == kind and key in keys
                for m in ms
            )
            if found:
                out[self.na + r] = found
        return out

    def article_chunks(self, row: int) -> list[ChunkInfo]:
        if row < self.na:
            return self.base.article_chunks(row)
        c0, c1, _, _ = self.seg.data.spans[row - self.na]
        return sorted(self.chunks([self.nc + c for c in range(c0, c1)]).values(), key=lambda c: (c.start, c.row))

    def entity_counts(self, kind: str | None, prefix: str, limit: int) -> list[EntityCount]:
        rows = [e for a, es in self.base.article_entities.items() if a not in self.hidden_articles for e in es]
        ents = self.seg.data.entities
        rows += [e for r in np.flatnonzero(self.alive).tolist() for e in ents[r]]
        return count_entities(rows, kind, prefix, limit)


class LiveStore:
    """The served generation and its live segment, swapped together as one pair."""

    def __init__(self, base: LocalStore, seg: LiveSegment) -> None:
        self._lock = threading.Lock()
        self._pair: tuple[LocalStore, LiveSegment, LocalStore | LiveView] = (base, seg, self._view(base, seg))

    @staticmethod
    def _view(base: LocalStore, seg: LiveSegment) -> LocalStore | LiveView:
        # an empty segment over its generation: the generation alone, at no cost
        return base if not seg.shadowed else LiveView(base, seg)

    @property
    def base(self) -> LocalStore:
        return self._pair[0]

    @property
    def segment(self) -> LiveSegment:
        return self._pair[1]

    def view(self) -> LocalStore | LiveView:
        return self._pair[2]

    def publish(self, seg: LiveSegment) -> None:
        """Serve ``seg`` over the current generation."""
        with self._lock:
            base = self._pair[0]
            self._pair = (base, seg, self._view(base, seg))

    def switch(self, base: LocalStore, seg: LiveSegment) -> None:
        """Serve a new generation with its rebased segment, in one swap."""
        with self._lock:
            self._pair = (base, seg, self._view(base, seg))

"""The served index read from Milvus (``SALON_STORE=milvus``): the same StoreView as local files.

Collections and weights are written by ``indexer.milvus``. A view pins one generation (the one the
alias named when the request began), so a build switching the alias mid-request never mixes rows
of two generations. Articles are cached per generation (they never change inside one, except by
``salon`` updates that replace whole articles: the cache is dropped on those).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from indexer import layout
from indexer import milvus as mv
from indexer.settings import Settings
from search.store import ChunkInfo, Sentences, Where, count_entities, merge_mentions, prefix_match, surname_index
from search.types import ArticleFacts, ArticleInfo, EntityCount

_EMPTY = (np.zeros(0, np.int64), np.zeros(0, np.float32))
MAX_TOPK = 16_384  # Milvus's limit on one search's results


def expression(where: Where | None) -> str:
    """A Milvus boolean expression for ``where`` ('' = no filter)."""
    if where is None:
        return ""
    parts = []
    if where.articles is not None:
        parts.append(mv.in_list("article", sorted(where.articles)))
    if where.event:
        e = mv.quote(where.event)
        parts.append(f"(event == {e} or source == {e})")
    if where.lo or where.hi:
        parts.append('date_min != ""')
        if where.lo:
            parts.append(f"date_max >= {mv.quote(where.lo)}")
        if where.hi:
            parts.append(f"date_min <= {mv.quote(where.hi)}")
    return " and ".join(parts)


class MilvusView:
    """One generation in Milvus, read-only."""

    def __init__(self, client: Any, prefix: str, gen: str, ef_search: int, cache_articles: int = 4096) -> None:
        self.client = client
        self.name = gen
        self.ef_search = ef_search
        self.names = {k: mv.collection(prefix, gen, k) for k in mv.KINDS}
        # generations published before entities lack their collection: no facets there
        self.has_entities = client.has_collection(self.names["entities"])
        for kind, name in self.names.items():  # released after a server restart; a no-op when loaded
            if kind != "entities" or self.has_entities:
                client.load_collection(name)
        self.manifest, self.stats, self._facets = mv.read_meta(client, self.names["meta"], gen)
        self.n_chunks = self.stats.n_chunks
        self._articles: OrderedDict[int, ArticleInfo] = OrderedDict()
        self._cache_max = cache_articles
        self._lock = threading.Lock()
        self.opened = time.monotonic()
        self._term_cache: dict[str, tuple[int, int]] = {}  # term → (id, df); a view is dropped on updates
        self._surnames: dict[str, frozenset[str]] | None = None  # made at the first surname filter

    # -- retrieval -----------------------------------------------------------------------------
    def dense(self, qv: np.ndarray, n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, self.n_chunks, MAX_TOPK)
        if n <= 0:
            return _EMPTY
        hits = self.client.search(
            self.names["chunks"],
            data=[qv.astype(np.float32).tolist()],
            anns_field="vector",
            limit=n,
            filter=expression(where),
            search_params={"metric_type": "IP", "params": {"ef": max(self.ef_search, n)}},
            output_fields=[],
        )[0]
        return _rows_scores(hits)

    def lexical(self, terms: list[str], n: int, where: Where | None) -> tuple[np.ndarray, np.ndarray]:
        ids = self._terms(set(terms))
        counts = Counter(t for t in terms if t in ids)
        if not counts:
            return _EMPTY
        big_n = max(1, self.n_chunks)
        # The query side of BM25: each term's IDF (Lucene form, as bm25s) times its count in the
        # query; the chunk side (stored) holds the length-normalised term frequencies.
        q = {
            ids[t][0]: float(np.float32(np.log(1 + (big_n - ids[t][1] + 0.5) / (ids[t][1] + 0.5)) * k))
            for t, k in counts.items()
        }
        n = min(n, self.n_chunks, MAX_TOPK)
        hits = self.client.search(
            self.names["chunks"],
            data=[q],
            anns_field="sparse",
            limit=n,
            filter=expression(where),
            search_params={"metric_type": "IP"},
            output_fields=[],
        )[0]
        rows, scores = _rows_scores(hits)
        keep = scores > 0
        return rows[keep], scores[keep]

    def _terms(self, terms: set[str]) -> dict[str, tuple[int, int]]:
        """(id, document frequency) of the known terms; cached, since lexical retrieval and the
        second stage of one search ask for the same terms (one round trip instead of two)."""
        with self._lock:
            missing = sorted(t for t in terms if t not in self._term_cache)
        if missing:
            flt = f"term in [{','.join(mv.quote(t) for t in missing)}]"
            rows = self.client.query(self.names["terms"], filter=flt, output_fields=["id", "term", "df"])
            got = {r["term"]: (int(r["id"]), int(r["df"])) for r in rows}
            with self._lock:
                if len(self._term_cache) > 200_000:
                    self._term_cache.clear()
                for t in missing:
                    self._term_cache[t] = got.get(t, (-1, 0))
        with self._lock:
            known = {t: self._term_cache[t] for t in terms if t in self._term_cache}
        return {t: v for t, v in known.items() if v[1] > 0}

    def doc_freq(self, terms: Iterable[str]) -> dict[str, int]:
        ts = set(terms)
        known = self._terms(ts)
        return {t: known[t][1] if t in known else 0 for t in ts}

    # -- what candidates need ------------------------------------------------------------------
    def chunks(self, rows: Sequence[int]) -> dict[int, ChunkInfo]:
        if not rows:
            return {}
        got = self.client.query(
            self.names["chunks"],
            filter=mv.in_list("row", rows),
            output_fields=["row", "article", "start", "end", "first_sentence", "last_sentence"],
        )
        out = {int(r["row"]): _chunk_info(r) for r in got}
        missing = [r for r in rows if r not in out]
        if missing:  # an article replaced between the search and this read
            raise layout.IndexCorrupt(f"Milvus generation {self.name}: chunks {missing[:5]} vanished; retry")
        return out

    def chunk_vectors(self, rows: Sequence[int]) -> np.ndarray:
        got = {
            int(r["row"]): r["vector"]
            for r in self.client.query(
                self.names["chunks"], filter=mv.in_list("row", rows), output_fields=["row", "vector"]
            )
        }
        return np.array([got[r] for r in rows], dtype=np.float32).reshape(len(rows), -1)

    def sentences(self, chunks: Sequence[ChunkInfo]) -> dict[int, Sentences]:
        want = sorted({s for c in chunks for s in range(c.first_sentence, c.last_sentence + 1)})
        if not want:
            return {}
        got = {
            int(r["row"]): r
            for r in self.client.query(
                self.names["sentences"],
                filter=mv.in_list("row", want),
                output_fields=["row", "start", "end", "vector"],
            )
        }
        out = {}
        for c in chunks:
            rows = tuple(range(c.first_sentence, c.last_sentence + 1))
            text = self.article(c.article).text
            starts = tuple(int(got[s]["start"]) for s in rows)
            ends = tuple(int(got[s]["end"]) for s in rows)
            out[c.row] = Sentences(
                rows,
                c.article,
                starts,
                ends,
                tuple(text[a:b] for a, b in zip(starts, ends, strict=True)),
                np.array([got[s]["vector"] for s in rows], dtype=np.float32).reshape(len(rows), -1),
            )
        return out

    def article(self, row: int) -> ArticleInfo:
        with self._lock:
            hit = self._articles.get(row)
            if hit is not None:
                self._articles.move_to_end(row)
                return hit
        parts = self.client.query(
            self.names["articles"],
            filter=f"row == {int(row)}",
            output_fields=["part", "id", "title", "date", "event", "place", "source", "language", "url", "text"],
        )
        if not parts:
            raise layout.IndexCorrupt(f"Milvus generation {self.name} has no article row {row}")
        parts.sort(key=lambda p: p["part"])
        a = parts[0]
        info = ArticleInfo(
            a["id"],
            a["title"],
            a["date"],
            a["event"],
            a["place"],
            a["source"],
            a["language"],
            a["url"],
            "".join(p["text"] for p in parts),
        )
        with self._lock:
            self._articles[row] = info
            while len(self._articles) > self._cache_max:
                self._articles.popitem(last=False)
        return info

    def article_row(self, doc_id: str) -> int | None:
        got = self.client.query(
            self.names["articles"], filter=f"id == {mv.quote(doc_id)} and part == 0", output_fields=["row"]
        )
        return int(got[0]["row"]) if got else None

    def facets(self) -> list[str]:
        return list(self._facets)

    def facts(self, rows: Sequence[int]) -> dict[int, ArticleFacts]:
        if not rows:
            return {}
        meta = {
            int(r["row"]): (r["event"], r["date"])
            for r in self.client.query(
                self.names["articles"],
                filter=f"{mv.in_list('row', rows)} and part == 0",
                output_fields=["row", "event", "date"],
            )
        }
        ents: dict[int, list[tuple[str, str, str]]] = {}
        if self.has_entities:
            fields = ["row", "article", "kind", "key", "name"]
            got = self.client.query(self.names["entities"], filter=mv.in_list("article", rows), output_fields=fields)
            for r in sorted(got, key=lambda r: int(r["row"])):  # the order the build wrote them in
                ents.setdefault(int(r["article"]), []).append((r["kind"], r["key"], r["name"]))
        return {r: ArticleFacts(*meta.get(r, ("", "")), tuple(ents.get(r, ()))) for r in rows}

    def entity_articles(self, kind: str, key: str) -> frozenset[int]:
        if not self.has_entities:
            return frozenset()
        flt = f"kind == {mv.quote(kind)} and key == {mv.quote(key)}"
        return frozenset(int(r["article"]) for r in self._query_all(self.names["entities"], flt, ["article"]))

    def entity_counts(self, kind: str | None, prefix: str, limit: int) -> list[EntityCount]:
        if not self.has_entities:
            return []
        # every row of the kind, filtered here: milvus-lite's LIKE knows prefixes of the whole
        # key only, and a word of a name (« benioff ») should find it too
        flt = f"kind == {mv.quote(kind)}" if kind else 'kind != ""'
        rows = self._query_all(self.names["entities"], flt, ["kind", "key", "name"])
        return count_entities(
            ((r["kind"], r["key"], r["name"]) for r in rows if prefix_match(r["key"], prefix)), None, "", limit
        )

    def person_keys_ending(self, word: str) -> frozenset[str]:
        if not self.has_entities:
            return frozenset()
        # milvus-lite's LIKE matches prefixes only: the people's keys are read once per view
        # (a view lives at most VIEW_TTL) and indexed by their last word here
        if self._surnames is None:
            rows = self._query_all(self.names["entities"], 'kind == "person"', ["key"])
            self._surnames = surname_index({r["key"] for r in rows})
        return self._surnames.get(word, frozenset())

    def mentions(
        self, kind: str, keys: Iterable[str], rows: Iterable[int] | None = None
    ) -> dict[int, list[tuple[int, int]]]:
        keys = sorted(set(keys))
        if not self.has_entities or not keys:
            return {}
        flt = f"kind == {mv.quote(kind)} and key in [{','.join(mv.quote(k) for k in keys)}]"
        if rows is not None:
            rs = sorted(set(rows))
            if not rs:
                return {}
            flt += f" and {mv.in_list('article', rs)}"
        got = self._query_all(self.names["entities"], flt, ["article", "mentions"])
        return merge_mentions((int(r["article"]), r["mentions"]) for r in got)

    def article_chunks(self, row: int) -> list[ChunkInfo]:
        got = self._query_all(
            self.names["chunks"],
            f"article == {int(row)}",
            ["row", "article", "start", "end", "first_sentence", "last_sentence"],
        )
        out = [_chunk_info(r) for r in got]
        return sorted(out, key=lambda c: (c.start, c.row))

    def _query_all(self, name: str, flt: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching ``flt``, past the limit of one query."""
        it = self.client.query_iterator(name, batch_size=4096, filter=flt, output_fields=fields)
        out: list[dict[str, Any]] = []
        try:
            while batch := it.next():
                out.extend(batch)
        finally:
            it.close()
        return out


def _chunk_info(r: dict[str, Any]) -> ChunkInfo:
    """A chunks-collection row as ChunkInfo."""
    fields = ("row", "article", "start", "end", "first_sentence", "last_sentence")
    return ChunkInfo(*(int(r[f]) for f in fields))


def _rows_scores(hits: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array([int(h["row"]) for h in hits], dtype=np.int64)
    scores = np.array([float(h["distance"]) for h in hits], dtype=np.float32)
    order = np.lexsort((rows, -scores))  # ties by row, as the local store
    return rows[order], scores[order]


class MilvusStore:
    """Follows the alias: ``view()`` is the generation served now (looked up at most once a second)."""

    ALIAS_TTL = 1.0
    # Article updates in the served generation (indexer.milvus.ServedGeneration) change term
    # frequencies, counts and facets: every search node sees them within this many seconds.
    VIEW_TTL = 60.0

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.prefix = settings.milvus_prefix
        self._views: dict[str, MilvusView] = {}
        self._current: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, client: Any | None = None) -> MilvusStore:
        store = cls(client or mv.connect(settings), settings)
        store.view()  # refuse now, not at the first query, if nothing is served
        return store

    def view(self) -> MilvusView:
        now = time.monotonic()
        with self._lock:
            cur = self._current
            if cur is not None and now - cur[0] < self.ALIAS_TTL:
                return self._views[cur[1]]
        gen = mv.served_generation(self.client, self.prefix)
        if gen is None:
            raise layout.IndexMissing(
                f"no Salon index in Milvus under {self.prefix!r}; build one with `salon index --store milvus`"
            )
        with self._lock:
            v = self._views.get(gen)
            if v is None or now - v.opened > self.VIEW_TTL:
                v = MilvusView(self.client, self.prefix, gen, self.settings.hnsw_ef_search)
                # keep only the served view: a request holding an older one keeps its reference
                self._views = {gen: v}
            self._current = (now, gen)
            return v

    def refresh(self) -> None:
        """Forget cached views (after updates of the served generation)."""
        with self._lock:
            self._views.clear()
            self._current = None

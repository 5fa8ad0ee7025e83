"""The live segment: articles written since the served generation, searchable within seconds.

The writer (``Writer``, one thread in the server) turns each write of the archive
(indexer/archive.py) into the rows a build makes for an article — the same chunking, one
encoder pass per chunk with its sentences pooled, the same entities, the same BM25 tokens — and
appends them to a small in-memory segment that search reads beside the served generation
(search/live.py). Readers hold a ``LiveSegment`` snapshot: the writer only appends past the rows
a snapshot covers and publishes each new snapshot by one reference swap, so a search never sees
half an article. A merge (a build, which folds the archive in) turns the segment into a new
generation; the segment then keeps only the writes the generation does not hold.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from indexer.analysis import analyze
from indexer.archive import Archive, Op, Task, Write
from indexer.corpus import Article
from indexer.settings import Settings

log = logging.getLogger("salon.live")


@dataclass
class LiveRows:
    """One article as a build would index it."""

    article: Article
    chunks: list[tuple[int, int, int, int]]  # start, end, first and last sentence (the article's)
    sentences: list[tuple[int, int]]
    chunk_vecs: np.ndarray  # (chunks, dim) float32
    sent_vecs: np.ndarray  # (sentences, dim)
    chunk_tokens: list[list[str]]  # BM25 tokens of each chunk (its title head included, as built)
    sent_terms: list[frozenset[str]]
    entities: list[tuple[str, str, str]]  # (kind, key, name)
    mentions: list[list[tuple[int, int]]] = field(default_factory=list)  # per entity, offsets


def prepare_rows(articles: Sequence[Article], embedder: Any, settings: Settings) -> list[LiveRows]:
    """The rows of ``articles``, made by the build's own code (so a merge changes nothing)."""
    from indexer.build import _chunk_head, embed_prepared, lexical_tokens, prepare

    prepared = prepare(list(articles), embedder, settings, progress=False)
    chunk_vecs, sent_vecs = embed_prepared(prepared, embedder, settings)
    out = []
    c0 = s0 = 0
    for p in prepared:
        text = p.article.text
        head = _chunk_head(p, settings)
        nc, ns = len(p.chunks), len(p.sentences)
        out.append(
            LiveRows(
                p.article,
                [(c.start, c.end, c.first_sentence, c.last_sentence) for c in p.chunks],
                [(s.start, s.end) for s in p.sentences],
                chunk_vecs[c0 : c0 + nc],
                sent_vecs[s0 : s0 + ns],
                [lexical_tokens(head + text[c.start : c.end]) for c in p.chunks],
                [frozenset(analyze(text[s.start : s.end])) for s in p.sentences],
                [(e.kind, e.key, e.name) for e in p.entities],
                [list(e.mentions) for e in p.entities],
            )
        )
        c0, s0 = c0 + nc, s0 + ns
    return out


class Rows:
    """A growable 2-D array: rows are appended, never changed, so a reader of the first ``n``
    rows is never disturbed by a writer adding more (growing copies into a new array)."""

    def __init__(self, width: int, dtype: Any, capacity: int = 16) -> None:
        self.array = np.zeros((capacity, width), dtype=dtype)
        self.n = 0

    def rows(self) -> np.ndarray:
        """The rows appended so far (``n`` read first: the array then holds at least that many)."""
        n = self.n
        return self.array[:n]

    def extend(self, rows: np.ndarray) -> None:
        need = self.n + len(rows)
        if need > len(self.array):
            grown = np.zeros((max(need, 2 * len(self.array)), self.array.shape[1]), dtype=self.array.dtype)
            grown[: self.n] = self.array[: self.n]
            self.array = grown  # readers holding the old array still read the same rows
        self.array[self.n : need] = rows
        self.n = need


class LiveData:
    """Rows of every article the segment ever held, append-only; only the writer appends."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.chunk_vecs = Rows(dim, np.float32)
        self.chunk_meta = Rows(5, np.int64)  # article row, start, end, first and last sentence row
        self.chunk_len = Rows(1, np.float32)  # BM25 tokens
        self.sent_vecs = Rows(dim, np.float16)  # as the generation stores them
        self.sent_meta = Rows(3, np.int64)  # article row, start, end
        self.sent_terms: list[frozenset[str]] = []
        self.chunk_tokens: list[list[str]] = []
        self.postings: dict[str, Rows] = {}  # term → (chunk row, tf) rows
        self.articles: list[Article] = []
        self.entities: list[tuple[tuple[str, str, str], ...]] = []
        self.entity_rows: dict[tuple[str, str], list[int]] = {}  # (kind, key) → article rows
        self.mentions: list[tuple[tuple[tuple[int, int], ...], ...]] = []
        self.seqs: list[int] = []  # the archive write each article row comes from
        self.spans: list[tuple[int, int, int, int]] = []  # chunk rows [c0, c1), sentence rows [s0, s1)

    def append(self, seq: int, r: LiveRows) -> int:
        row = len(self.articles)
        c0, s0 = self.chunk_vecs.n, self.sent_vecs.n
        meta = np.array([(row, a, b, s0 + f, s0 + la) for a, b, f, la in r.chunks], dtype=np.int64).reshape(-1, 5)
        self.sent_vecs.extend(r.sent_vecs.astype(np.float16))
        self.sent_meta.extend(np.array([(row, a, b) for a, b in r.sentences], dtype=np.int64).reshape(-1, 3))
        self.sent_terms.extend(r.sent_terms)
        self.chunk_tokens.extend(r.chunk_tokens)
        per: dict[str, list[tuple[int, int]]] = {}
        for i, toks in enumerate(r.chunk_tokens):
            for t, tf in Counter(toks).items():
                per.setdefault(t, []).append((c0 + i, tf))
        for t, posts in per.items():
            if t not in self.postings:
                self.postings[t] = Rows(2, np.int64, 4)
            self.postings[t].extend(np.array(posts, dtype=np.int64))
        self.chunk_len.extend(np.array([[len(t)] for t in r.chunk_tokens], dtype=np.float32).reshape(-1, 1))
        self.chunk_meta.extend(meta)
        self.chunk_vecs.extend(r.chunk_vecs.astype(np.float32))
        self.entities.append(tuple(r.entities))
        for kind, key, _ in r.entities:
            self.entity_rows.setdefault((kind, key), []).append(row)
        self.mentions.append(tuple(tuple(m) for m in r.mentions))
        self.seqs.append(seq)
        self.spans.append((c0, self.chunk_vecs.n, s0, self.sent_vecs.n))
        self.articles.append(r.article)  # last: a row counts once all of it is there
        return row

    def rows_of(self, row: int) -> LiveRows:
        """Article ``row`` back as LiveRows (to copy it into a compacted segment)."""
        c0, c1, s0, s1 = self.spans[row]
        meta = self.chunk_meta.array[c0:c1]
        smeta = self.sent_meta.array[s0:s1]
        return LiveRows(
            self.articles[row],
            [(int(a), int(b), int(f) - s0, int(la) - s0) for _, a, b, f, la in meta.tolist()],
            [(int(a), int(b)) for _, a, b in smeta.tolist()],
            self.chunk_vecs.array[c0:c1].copy(),
            self.sent_vecs.array[s0:s1].astype(np.float32),
            self.chunk_tokens[c0:c1],
            self.sent_terms[s0:s1],
            list(self.entities[row]),
            [list(m) for m in self.mentions[row]],
        )


@dataclass(frozen=True)
class LiveSegment:
    """What search reads of the live segment: a snapshot, never changed once published."""

    data: LiveData
    n_articles: int
    n_chunks: int
    n_sentences: int
    by_id: dict[str, int]  # id → its live article row (the latest put)
    shadowed: frozenset[str]  # ids whose copy in the served generation is hidden (replaced, deleted)
    base_seq: int  # the archive write the served generation holds up to
    seq: int  # the last archive write applied
    ops: tuple[tuple[int, str, int], ...] = ()  # (seq, id, live row or -1 for a delete), in order

    @classmethod
    def empty(cls, dim: int, base_seq: int = 0) -> LiveSegment:
        return cls(LiveData(dim), 0, 0, 0, {}, frozenset(), base_seq, base_seq)

    @property
    def live_articles(self) -> int:
        return len(self.by_id)

    @property
    def live_deletes(self) -> int:
        """Ids deleted (and not written again) since the served generation."""
        return len(self.shadowed - self.by_id.keys())

    def alive(self) -> np.ndarray:
        """Per live article row: whether it is the current version of its id."""
        ok = np.zeros(self.n_articles, dtype=bool)
        ok[list(self.by_id.values())] = True
        return ok

    def apply(self, writes: Sequence[tuple[Write, LiveRows | None]]) -> LiveSegment:
        """A new snapshot with ``writes`` applied in order (appends rows to the shared data)."""
        by_id = dict(self.by_id)
        shadowed = set(self.shadowed)
        ops = list(self.ops)
        seq = self.seq
        for w, rows in writes:
            if w.seq <= self.base_seq:
                continue  # the served generation already holds it
            shadowed.add(w.id)
            by_id.pop(w.id, None)
            if w.op == "put" and rows is not None:
                by_id[w.id] = self.data.append(w.seq, rows)
            ops.append((w.seq, w.id, by_id.get(w.id, -1)))
            seq = max(seq, w.seq)
        d = self.data
        n = (len(d.articles), d.chunk_vecs.n, d.sent_vecs.n)
        return LiveSegment(d, *n, by_id, frozenset(shadowed), self.base_seq, seq, tuple(ops))

    def rebase(self, base_seq: int) -> LiveSegment:
        """The segment over a generation that holds the archive up to ``base_seq``: the writes it
        holds leave, the rest are copied into fresh data (dead rows dropped)."""
        fresh = LiveSegment.empty(self.data.dim, base_seq)
        fresh = LiveSegment(fresh.data, 0, 0, 0, {}, frozenset(), base_seq, max(base_seq, self.seq))
        keep: list[tuple[Write, LiveRows | None]] = []
        for seq, i, row in self.ops:
            if seq <= base_seq:
                continue
            current = self.by_id.get(i) == row and row >= 0
            op: Op = "put" if current else "delete"
            # a put later replaced: its rows are gone, but its id stays hidden in the generation
            keep.append((Write(seq, "", op, i, None), self.data.rows_of(row) if current else None))
        return fresh.apply(keep) if keep else fresh


class Writer:
    """Indexes the archive's writes into the live segment, in order, on one thread.

    ``publish`` receives each new snapshot; ``encoder`` makes the Embedder (PyTorch) the first
    time a write needs it, so a server with writes on but none made stays as lean as one without.
    """

    def __init__(
        self,
        archive: Archive,
        settings: Settings,
        dim: int,
        base_seq: int,
        publish: Callable[[LiveSegment], None],
        encoder: Callable[[], Any],
        prepare: Callable[[Sequence[Article], Any, Settings], list[LiveRows]] = prepare_rows,
    ) -> None:
        self.archive = archive
        self.settings = settings
        self.publish = publish
        self._encoder = encoder
        self._embedder: Any = None
        self._prepare = prepare
        self.segment = LiveSegment.empty(dim, base_seq)
        self._cond = threading.Condition()
        self._stop = False
        self.error = ""
        self.indexed_writes = 0
        self.failed_tasks = 0
        self.last_seconds = 0.0
        # called (on this thread) when the segment reaches live_merge_articles: the server merges
        self.on_full: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="salon-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the HTTP side -----------------------------------------------------------------------
    def submit(self, kind: str, writes: Sequence[tuple[Op, str, Article | None]]) -> Task:
        task = self.archive.submit(kind, writes)  # durable from here on
        with self._cond:
            self._cond.notify_all()
        return task

    def wait(self, task_id: str, timeout: float) -> Task | None:
        """The task once indexed or failed, or as it stands after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                t = self.archive.task(task_id)
                left = deadline - time.monotonic()
                if t is None or t.state != "enqueued" or left <= 0:
                    return t
                self._cond.wait(min(left, 0.5))

    def pending(self) -> int:
        return max(0, self.archive.last_seq() - self.segment.seq)

    def embedder(self) -> Any:
        if self._embedder is None:
            self._embedder = self._encoder()
        return self._embedder

    # -- switching generations ---------------------------------------------------------------
    def rebase(self, base_seq: int, switch: Callable[[LiveSegment], None]) -> LiveSegment:
        """Rebase the segment on a new served generation holding the archive up to ``base_seq``;
        ``switch`` serves the generation with it, under the writer's lock, so no write indexed
        meanwhile is published over the old generation and lost. Writes the generation holds
        that this writer had not indexed yet are done: their tasks are marked indexed."""
        with self._cond:
            seg = self.segment
            if base_seq > seg.seq:
                done = {w.task for w in self.archive.since(seg.seq, base_seq)}
                self.archive.finish(done, "indexed")
            self.segment = seg.rebase(base_seq)
            switch(self.segment)
            self._cond.notify_all()
            return self.segment

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self.archive.last_seq() <= self.segment.seq:
                    self._cond.wait(1.0)
                if self._stop:
                    return
                after = self.segment.seq
            writes = self.archive.since(after)
            if not writes:
                continue
            # a batch of live_batch writes, never cutting a task in two (it is indexed as a whole)
            n = min(len(writes), self.settings.live_batch)
            while n < len(writes) and writes[n].task == writes[n - 1].task:
                n += 1
            writes = writes[:n]
            try:
                self._index(writes)
            except Exception as exc:  # the tasks fail with the reason; the server carries on
                log.exception("indexing writes %d–%d failed", writes[0].seq, writes[-1].seq)
                tasks = {w.task for w in writes}
                self.archive.finish(tasks, "failed", f"{type(exc).__name__}: {exc}")
                self.failed_tasks += len(tasks)
                with self._cond:
                    # failed writes are skipped from now on (Archive.since leaves them out)
                    self.segment = replace(self.segment, seq=max(self.segment.seq, writes[-1].seq))
                    self._cond.notify_all()

    def _index(self, writes: list[Write]) -> None:
        t0 = time.perf_counter()
        puts = [w for w in writes if w.op == "put" and w.article is not None]
        rows: dict[int, LiveRows] = {}
        if puts:
            made = self._prepare([w.article for w in puts if w.article is not None], self.embedder(), self.settings)
            rows = {w.seq: r for w, r in zip(puts, made, strict=True)}
        with self._cond:
            # a reload may have rebased the segment meanwhile: apply() skips what its generation holds
            self.segment = self.segment.apply([(w, rows.get(w.seq)) for w in writes])
            self.publish(self.segment)
            self.archive.finish({w.task for w in writes}, "indexed")
            self.indexed_writes += len(writes)
            self.last_seconds = time.perf_counter() - t0
            self._cond.notify_all()
            seg = self.segment
            full = seg.live_articles + seg.live_deletes >= self.settings.live_merge_articles
        if full and self.on_full is not None:
            self.on_full()


class MilvusWriter(Writer):
    """Applies the archive's writes straight to the Milvus collections the alias serves (upsert
    and delete by article, indexer/milvus.py ServedGeneration): Milvus is the live index, so
    there is no segment to merge. The last write applied is kept in the archive, so a restart
    resumes after it (re-applying one is harmless: upserts and deletes are by id)."""

    def __init__(
        self,
        archive: Archive,
        settings: Settings,
        dim: int,
        refresh: Callable[[], None],
        encoder: Callable[[], Any],
    ) -> None:
        self.target = f"milvus:{settings.milvus_prefix}"
        super().__init__(archive, settings, dim, 0, lambda seg: None, encoder)
        self.segment = LiveSegment.empty(dim, archive.applied(self.target))
        self.refresh = refresh

    def _index(self, writes: list[Write]) -> None:
        from indexer.milvus import ServedGeneration

        t0 = time.perf_counter()
        gen = ServedGeneration(self.settings)
        if gen.manifest.archive_seq > self.segment.seq:  # a build published since holds these
            writes = [w for w in writes if w.seq > gen.manifest.archive_seq]
        # runs of puts and of deletes, in order; within a run of puts the last of an id wins
        i = 0
        while i < len(writes):
            j = i
            while j < len(writes) and writes[j].op == writes[i].op:
                j += 1
            run = writes[i:j]
            if run[0].op == "put":
                latest = {w.id: w.article for w in run if w.article is not None}
                gen.upsert_articles(list(latest.values()), self.embedder(), self.settings)
            else:
                gen.delete([w.id for w in run])
            i = j
        last = max(w.seq for w in writes) if writes else self.segment.seq
        self.archive.set_applied(self.target, last)
        self.refresh()
        with self._cond:
            self.segment = replace(self.segment, seq=max(self.segment.seq, last))
            self.archive.finish({w.task for w in writes}, "indexed")
            self.indexed_writes += len(writes)
            self.last_seconds = time.perf_counter() - t0
            self._cond.notify_all()

"""Publish index generations to Milvus, and update the served one by article.

Each generation is six collections named ``{prefix}_{gen}_{kind}``:

- ``chunks``: chunk vector (HNSW, inner product), Salon's sparse lexical vector (BM25 document
  weights of the French analyser's terms; inverted index, inner product), article row, offsets,
  sentence rows, date bounds, event/source (casefolded, for filters);
- ``sentences``: sentence vector, article row, offsets;
- ``articles``: metadata and text (in parts: a VARCHAR holds at most 65,535 bytes);
- ``terms``: the lexical vocabulary (term → id, document frequency) for query-side IDF weights;
- ``entities``: one row per entity and article (kind, folded key, name, mentions as JSON), as
  ``store.sqlite`` has them; generations published before it lack it and serve no facets;
- ``meta``: the manifest and the lexical statistics.

The alias ``{prefix}`` names the served generation's ``meta`` collection; a build writes a whole
new generation, then moves that one alias (atomic), then drops generations beyond the last
``keep_generations`` (never the aliased one). Search nodes need nothing but the Milvus URI.

French analysis stays Salon's (indexer.analysis): milvus-lite accepts a French analyzer and
silently skips stemming and accent folding, and its BM25 differs from a cluster's, so Milvus only
multiplies Salon's weights (docs/scale-out.md). Readers: search.milvus_store.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ConfigDict

from indexer import layout
from indexer.analysis import analyze
from indexer.files import parse_json
from indexer.settings import Settings

if TYPE_CHECKING:
    from indexer.corpus import Article
    from indexer.model import Embedder

KINDS = ("chunks", "sentences", "articles", "terms", "meta", "entities")
TEXT_PART = 16_000  # characters per article part: ≤ 64,000 bytes of UTF-8 whatever the script
VARCHAR = 65_535
K1, B = 1.5, 0.75  # bm25s defaults (method "lucene"), so local and Milvus scores agree
EMPTY_TERM = "\x00empty"  # what write_lexical indexes for a chunk without terms
BATCH = 1000


def connect(settings: Settings) -> Any:
    """A MilvusClient for ``settings.milvus_uri`` (a local path opens embedded milvus-lite)."""
    from pymilvus import MilvusClient

    kw: dict[str, Any] = {}
    if settings.milvus_token is not None:
        kw["token"] = settings.milvus_token.get_secret_value()
    if settings.milvus_db:
        kw["db_name"] = settings.milvus_db
    uri = settings.milvus_uri
    if "://" not in uri:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    return MilvusClient(uri=uri, **kw)


def collection(prefix: str, gen: str, kind: str) -> str:
    return f"{prefix}_{gen}_{kind}"


def served_generation(client: Any, prefix: str) -> str | None:
    """The generation the alias points at, or None before the first publish."""
    if prefix not in client.list_aliases().get("aliases", []):
        return None
    target = str(client.describe_alias(prefix)["collection_name"])
    return target[len(prefix) + 1 : -len("_meta")]


def generations(client: Any, prefix: str) -> list[str]:
    pat = re.compile(rf"^{re.escape(prefix)}_(g\w+?)_({'|'.join(KINDS)})$")
    return sorted({m.group(1) for c in client.list_collections() if (m := pat.match(c))})


def doc_weights(tokens: list[str], avgdl: float, vocab: dict[str, int]) -> dict[int, float]:
    """BM25 document side (Lucene form, as bm25s): tf / (tf + k1 (1 - b + b dl/avgdl))."""
    norm = K1 * (1 - B + B * len(tokens) / avgdl)
    return {vocab[t]: float(np.float32(tf / (tf + norm))) for t, tf in Counter(tokens).items()}


def chunk_tokens(text: str) -> list[str]:
    return analyze(text) or [EMPTY_TERM]


@dataclass
class Stats:
    """What the lexical weights and row allocation need; kept in ``meta``."""

    n_chunks: int  # N of the query-side IDF
    next_chunk: int
    next_sentence: int
    next_article: int
    next_term: int
    avgdl: float  # average chunk length (terms) at build time, used for every document weight
    next_entity: int = 0  # absent from generations published before entities

    # Read back strictly (``parse_json``): a field missing, unknown or of another type is refused.
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")

    @classmethod
    def loads(cls, text: str, where: str) -> Stats:
        """The statistics in JSON ``text`` (read from ``where``); IndexCorrupt if they are not."""
        return parse_json(
            cls, text, lambda problem: layout.IndexCorrupt(f"{where} statistics: {problem}; rebuild with `salon index`")
        )


def read_meta(client: Any, name: str, gen: str) -> tuple[layout.Manifest, Stats, list[str]]:
    """The manifest, lexical statistics and facets kept in generation ``gen``'s ``meta``
    collection ``name``, each validated (IndexCorrupt when one is missing or malformed)."""
    rows = {r["key"]: r["value"] for r in client.query(name, filter='key != ""', output_fields=["key", "value"])}
    where = f"Milvus generation {gen}"
    meta = {key: _joined(rows, key, where) for key in ("manifest", "stats", "facets") if key in rows}
    if "manifest" not in meta or "stats" not in meta:
        raise layout.IndexCorrupt(f"{where} has no manifest; rebuild with `salon index`")
    facets = parse_json(
        list[str], meta.get("facets", "[]"), lambda p: layout.IndexCorrupt(f"{where} facets: {p}; rebuild")
    )
    return layout.Manifest.loads(meta["manifest"], where), Stats.loads(meta["stats"], where), facets


# A meta value longer than a VARCHAR field holds (an archive of many events lists them all in
# "facets") is stored in pieces: the first under its key, the others under "key#1", "key#2", …,
# and their count under "key#parts", so a missing piece is an error rather than a shorter list.
def _pieces(key: str, text: str) -> list[dict[str, Any]]:
    data, parts, at = text.encode("utf-8"), [], 0
    while True:
        end = min(len(data), at + VARCHAR)
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never inside a UTF-8 character
            end -= 1
        parts.append(data[at:end].decode("utf-8"))
        at = end
        if at >= len(data):
            break
    rows = [{"key": key if i == 0 else f"{key}#{i}", "value": p} for i, p in enumerate(parts)]
    return [*rows, {"key": f"{key}#parts", "value": str(len(parts))}]


def _joined(rows: dict[str, str], key: str, where: str) -> str:
    n = rows.get(f"{key}#parts", "1")
    names = [key, *(f"{key}#{i}" for i in range(1, int(n) if n.isdigit() else 0))]
    if not n.isdigit() or any(name not in rows for name in names):
        raise layout.IndexCorrupt(f"{where}: {key} is missing some of its {n} pieces; rebuild with `salon index`")
    return "".join(rows[name] for name in names)


def _schemas(dim: int) -> dict[str, tuple[Any, Any]]:
    from pymilvus import DataType, MilvusClient

    def schema(fields: list[tuple[str, Any, dict[str, Any]]], pk: str) -> Any:
        s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for name, dtype, kw in fields:
            s.add_field(name, dtype, is_primary=name == pk, **kw)
        return s

    def index(*specs: tuple[str, str, dict[str, Any]]) -> Any:
        ip = MilvusClient.prepare_index_params()
        for field, kind, params in specs:
            ip.add_index(field, index_type=kind, metric_type="IP", params=params)
        return ip

    i64, vc = DataType.INT64, DataType.VARCHAR
    s = {"max_length": 1024}
    text = {"max_length": VARCHAR}
    # a chunk and a sentence are both a row of text at offsets in an article
    located: list[tuple[str, Any, dict[str, Any]]] = [
        ("row", i64, {}),
        ("article", i64, {}),
        ("start", i64, {}),
        ("end", i64, {}),
    ]
    # Milvus wants a vector field in every collection: the lookup tables carry a 2-d placeholder.
    dummy = ("_v", DataType.FLOAT_VECTOR, {"dim": 2})
    dummy_index = index(("_v", "FLAT", {}))
    return {
        "chunks": (
            schema(
                [
                    *located,
                    ("first_sentence", i64, {}),
                    ("last_sentence", i64, {}),
                    ("event", vc, s),
                    ("source", vc, s),
                    ("date_min", vc, {"max_length": 16}),
                    ("date_max", vc, {"max_length": 16}),
                    ("vector", DataType.FLOAT_VECTOR, {"dim": dim}),
                    ("sparse", DataType.SPARSE_FLOAT_VECTOR, {}),
                ],
                "row",
            ),
            index(("vector", "HNSW", {"M": 32, "efConstruction": 80}), ("sparse", "SPARSE_INVERTED_INDEX", {})),
        ),
        "sentences": (
            schema([*located, ("vector", DataType.FLOAT_VECTOR, {"dim": dim})], "row"),
            # read by row (a candidate's sentences), never searched: an exact index costs nothing
            index(("vector", "FLAT", {})),
        ),
        "articles": (
            schema(
                [
                    ("key", i64, {}),
                    ("row", i64, {}),
                    ("part", i64, {}),
                    ("id", vc, s),
                    *[(f, vc, s) for f in ("title", "date", "event", "place", "source", "language", "url")],
                    ("hash", vc, {"max_length": 64}),
                    ("text", vc, text),
                    dummy,
                ],
                "key",
            ),
            dummy_index,
        ),
        "terms": (schema([("id", i64, {}), ("term", vc, s), ("df", i64, {}), dummy], "id"), dummy_index),
        "meta": (schema([("key", vc, {"max_length": 64}), ("value", vc, text), dummy], "key"), dummy_index),
        "entities": (
            schema(
                [
                    ("row", i64, {}),
                    ("article", i64, {}),
                    ("kind", vc, {"max_length": 16}),
                    ("key", vc, s),
                    ("name", vc, s),
                    ("mentions", vc, text),
                    dummy,
                ],
                "row",
            ),
            dummy_index,
        ),
    }


def _insert(client: Any, name: str, rows: Iterable[dict[str, Any]]) -> int:
    n, batch = 0, []
    for r in rows:
        batch.append(r)
        if len(batch) >= BATCH:
            client.insert(name, batch)
            n, batch = n + len(batch), []
    if batch:
        client.insert(name, batch)
        n += len(batch)
    return n


def _article_rows(row: int, a: dict[str, Any]) -> Iterator[dict[str, Any]]:
    text = a["text"]
    parts = [text[i : i + TEXT_PART] for i in range(0, len(text), TEXT_PART)] or [""]
    for p, piece in enumerate(parts):
        meta = a if p == 0 else {}
        yield {
            "key": (row << 16) | p,
            "row": row,
            "part": p,
            "id": a["id"] if p == 0 else "",
            **{f: (meta.get(f) or "")[:1000] for f in ("title", "date", "event", "place", "source", "language")},
            "url": (meta.get("url") or "")[:1000],
            "hash": meta.get("hash") or "",
            "text": piece,
            "_v": [1.0, 0.0],
        }


@dataclass
class Published:
    generation: str
    seconds: float
    counts: dict[str, int]
    dropped: list[str]


def publish(gen_folder: Path, settings: Settings, client: Any | None = None) -> Published:
    """Copy a finished local generation into new Milvus collections and serve it (alias switch)."""
    t0 = time.perf_counter()
    import faiss

    client = client or connect(settings)
    prefix = settings.milvus_prefix
    manifest = layout.Manifest.read(gen_folder)
    db = sqlite3.connect(f"file:{gen_folder / layout.STORE}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        arts = [dict(r) for r in db.execute("SELECT * FROM articles ORDER BY row")]
        chunks = db.execute(
            "SELECT row, article, start, end, first_sentence, last_sentence FROM chunks ORDER BY row"
        ).fetchall()
        sents = db.execute("SELECT row, article, start, end FROM sentences ORDER BY row").fetchall()
        try:
            ents = [dict(r) for r in db.execute("SELECT article, kind, key, name, mentions FROM entities ORDER BY row")]
        except sqlite3.OperationalError:  # a generation built before entities
            ents = []
    finally:
        db.close()
    index = faiss.read_index(str(gen_folder / layout.DENSE))
    chunk_vecs = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, manifest.dim), np.float32)
    sent_vecs = np.load(gen_folder / layout.SENTENCES).astype(np.float32)

    title_in = bool(manifest.chunking.get("title_in_chunks", True))
    tokens = []
    for c in chunks:
        a = arts[c["article"]]
        head = f"{a['title']}\n\n" if title_in and a["title"] else ""
        tokens.append(chunk_tokens(head + a["text"][c["start"] : c["end"]]))
    vocab: dict[str, int] = {}
    df: Counter[str] = Counter()
    for toks in tokens:
        for t in toks:
            vocab.setdefault(t, len(vocab))
        df.update(set(toks))
    total_len = sum(len(t) for t in tokens)
    avgdl = total_len / max(1, len(tokens))
    stats = Stats(len(chunks), len(chunks), len(sents), len(arts), len(vocab), avgdl, len(ents))

    gen = "g" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    names = {k: collection(prefix, gen, k) for k in KINDS}
    for kind, (schema, index_params) in _schemas(manifest.dim).items():
        client.create_collection(names[kind], schema=schema, index_params=index_params)
    try:
        _insert(
            client,
            names["chunks"],
            (
                {
                    "row": c["row"],
                    "article": c["article"],
                    "start": c["start"],
                    "end": c["end"],
                    "first_sentence": c["first_sentence"],
                    "last_sentence": c["last_sentence"],
                    "event": (arts[c["article"]]["event"] or "").casefold()[:1000],
                    "source": (arts[c["article"]]["source"] or "").casefold()[:1000],
                    "date_min": arts[c["article"]]["date_min"] or "",
                    "date_max": arts[c["article"]]["date_max"] or "",
                    "vector": chunk_vecs[i].tolist(),
                    "sparse": doc_weights(tokens[i], avgdl, vocab),
                }
                for i, c in enumerate(chunks)
            ),
        )
        _insert(
            client,
            names["sentences"],
            (
                {"row": s["row"], "article": s["article"], "start": s["start"], "end": s["end"], "vector": v.tolist()}
                for s, v in zip(sents, sent_vecs, strict=True)
            ),
        )
        _insert(client, names["articles"], (r for a in arts for r in _article_rows(a["row"], a)))
        _insert(client, names["terms"], ({"id": i, "term": t, "df": df[t], "_v": [1.0, 0.0]} for t, i in vocab.items()))
        _insert(client, names["entities"], (entity_row(i, e) for i, e in enumerate(ents)))
        facets = sorted({a["event"] or a["source"] for a in arts if a["event"] or a["source"]})
        _write_meta(client, names["meta"], manifest, stats, facets)
        for name in names.values():
            client.flush(name)
    except BaseException:
        for name in names.values():
            client.drop_collection(name)
        raise
    # One alias names the served generation: moving it is the atomic switch.
    if prefix in client.list_aliases().get("aliases", []):
        client.alter_alias(names["meta"], prefix)
    else:
        client.create_alias(names["meta"], prefix)
    dropped = prune(client, prefix, settings.keep_generations)
    counts = {"articles": len(arts), "chunks": len(chunks), "sentences": len(sents), "terms": len(vocab)}
    return Published(gen, time.perf_counter() - t0, counts, dropped)


def entity_row(row: int, e: dict[str, Any]) -> dict[str, Any]:
    """An ``entities`` row from one of store.sqlite's (mentions: their JSON, cut to a VARCHAR)."""
    mentions = e["mentions"]
    if len(mentions.encode()) > VARCHAR:  # a name said thousands of times: its first mentions
        mentions = json.dumps(json.loads(mentions)[: VARCHAR // 24])
    return {
        "row": row,
        "article": e["article"],
        "kind": e["kind"],
        "key": e["key"][:1000],
        "name": e["name"][:1000],
        "mentions": mentions,
        "_v": [1.0, 0.0],
    }


def _write_meta(client: Any, name: str, manifest: layout.Manifest, stats: Stats, facets: list[str] | None) -> None:
    rows = [*_pieces("manifest", json.dumps(asdict(manifest), ensure_ascii=False))]
    rows += _pieces("stats", json.dumps(asdict(stats)))
    if facets is not None:
        rows += _pieces("facets", json.dumps(facets, ensure_ascii=False))
    client.upsert(name, [{**r, "_v": [1.0, 0.0]} for r in rows])


def prune(client: Any, prefix: str, keep: int) -> list[str]:
    """Drop generations beyond the newest ``keep``; the served one only after the alias left it."""
    served = served_generation(client, prefix)
    gens = generations(client, prefix)
    dropped = []
    for g in gens[: max(0, len(gens) - keep)]:
        if g == served:
            continue
        for kind in KINDS:
            name = collection(prefix, g, kind)
            if client.has_collection(name):
                client.drop_collection(name)
        dropped.append(g)
    return dropped


def quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def in_list(field: str, values: Sequence[int]) -> str:
    return f"{field} in [{','.join(str(int(v)) for v in values)}]"


class ServedGeneration:
    """Article-level updates of the generation the alias serves (a single writer at a time).

    The document weights of untouched chunks keep the average length they were computed with
    (like a search engine's older segments); a full build recomputes everything.
    """

    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        self.client = client or connect(settings)
        self.prefix = settings.milvus_prefix
        gen = served_generation(self.client, self.prefix)
        if gen is None:
            raise layout.IndexMissing(
                f"no Salon index in Milvus under {self.prefix!r}; run `salon index --store milvus`"
            )
        self.gen = gen
        self.names = {k: collection(self.prefix, gen, k) for k in KINDS}
        self.manifest, self.stats, facets = read_meta(self.client, self.names["meta"], gen)
        self.facets: set[str] = set(facets)
        self.has_entities = self.client.has_collection(self.names["entities"])

    def _article_row(self, doc_id: str) -> int | None:
        got = self.client.query(
            self.names["articles"], filter=f"id == {quote(doc_id)} and part == 0", output_fields=["row"]
        )
        return int(got[0]["row"]) if got else None

    def _drop_article(self, row: int) -> tuple[int, int]:
        """Remove an article's rows; return (chunks, sentences) removed."""
        old = self.client.query(self.names["chunks"], filter=f"article == {row}", output_fields=["row", "sparse"])
        if old:
            self._count_terms([set(_sparse_keys(c["sparse"])) for c in old], -1)
        n_sent = len(self.client.query(self.names["sentences"], filter=f"article == {row}", output_fields=["row"]))
        self.client.delete(self.names["chunks"], filter=f"article == {row}")
        self.client.delete(self.names["sentences"], filter=f"article == {row}")
        self.client.delete(self.names["articles"], filter=f"row == {row}")
        if self.has_entities:
            self.client.delete(self.names["entities"], filter=f"article == {row}")
        self.stats.n_chunks -= len(old)
        return len(old), n_sent

    def _count_terms(self, term_sets: list[set[int]], sign: int) -> None:
        delta: Counter[int] = Counter()
        for s in term_sets:
            delta.update(s)
        if not delta:
            return
        ids = list(delta)
        rows = self.client.query(self.names["terms"], filter=in_list("id", ids), output_fields=["id", "term", "df"])
        self.client.upsert(
            self.names["terms"],
            [
                {"id": r["id"], "term": r["term"], "df": max(0, r["df"] + sign * delta[r["id"]]), "_v": [1.0, 0.0]}
                for r in rows
            ],
        )

    def delete(self, doc_ids: Iterable[str]) -> int:
        """Remove articles by id; return how many were there."""
        n = 0
        for doc_id in doc_ids:
            row = self._article_row(doc_id)
            if row is not None:
                c, s = self._drop_article(row)
                self._bump_counts(-1, -c, -s)
                n += 1
        self._save()
        return n

    def upsert(
        self, items: Sequence[tuple[dict[str, Any], list[Any], list[tuple[int, int]], np.ndarray, np.ndarray]]
    ) -> None:
        """Insert or replace articles: (article fields as in store.sqlite, chunks, sentence spans,
        chunk vectors, sentence vectors); chunks are ``indexer.chunking.Chunk`` with sentence
        indices local to the article. The fields may hold ``entities``, the article's
        ``indexer.entities.Entity`` list."""
        title_in = bool(self.manifest.chunking.get("title_in_chunks", True))
        for art, chunks, sents, cvecs, svecs in items:
            old = self._article_row(art["id"])
            if old is None:
                self._bump_counts(1, 0, 0)
            else:
                c, s = self._drop_article(old)
                self._bump_counts(0, -c, -s)
            # A replaced article gets a new row: rows never change content, so readers may cache them.
            row = self.stats.next_article
            self.stats.next_article += 1
            head = f"{art['title']}\n\n" if title_in and art.get("title") else ""
            toks = [chunk_tokens(head + art["text"][c.start : c.end]) for c in chunks]
            vocab = self._term_ids({t for ts in toks for t in ts})
            avgdl = self.stats.avgdl
            c0, s0 = self.stats.next_chunk, self.stats.next_sentence
            self.client.insert(
                self.names["chunks"],
                [
                    {
                        "row": c0 + i,
                        "article": row,
                        "start": c.start,
                        "end": c.end,
                        "first_sentence": s0 + c.first_sentence,
                        "last_sentence": s0 + c.last_sentence,
                        "event": (art.get("event") or "").casefold()[:1000],
                        "source": (art.get("source") or "").casefold()[:1000],
                        "date_min": art.get("date_min") or "",
                        "date_max": art.get("date_max") or "",
                        "vector": cvecs[i].tolist(),
                        "sparse": doc_weights(toks[i], avgdl, vocab),
                    }
                    for i, c in enumerate(chunks)
                ],
            ) if chunks else None
            if sents:
                self.client.insert(
                    self.names["sentences"],
                    [
                        {"row": s0 + j, "article": row, "start": a, "end": b, "vector": svecs[j].tolist()}
                        for j, (a, b) in enumerate(sents)
                    ],
                )
            self.client.insert(self.names["articles"], list(_article_rows(row, art)))
            ents = art.get("entities") or []
            if self.has_entities and ents:
                e0 = self.stats.next_entity
                self.client.insert(
                    self.names["entities"],
                    [
                        entity_row(e0 + i, {**asdict(e), "article": row, "mentions": json.dumps(e.mentions)})
                        for i, e in enumerate(ents)
                    ],
                )
                self.stats.next_entity += len(ents)
            self._count_terms([{vocab[t] for t in ts} for ts in toks], +1)
            self.stats.next_chunk += len(chunks)
            self.stats.next_sentence += len(sents)
            self.stats.n_chunks += len(chunks)
            self.facets |= {f for f in (art.get("event"), art.get("source")) if f}
            self._bump_counts(0, len(chunks), len(sents))
        self._save()

    def upsert_articles(self, articles: Sequence[Article], embedder: Embedder, settings: Settings) -> None:
        """Chunk and embed ``articles`` as a build would, then insert or replace them by id."""
        from indexer.build import embed_prepared, prepare

        prepared = prepare(list(articles), embedder, settings, progress=False)
        chunk_vecs, sent_vecs = embed_prepared(prepared, embedder, settings)
        items = []
        c0 = s0 = 0
        for p in prepared:
            a = p.article
            nc, ns = len(p.chunks), len(p.sentences)
            lo, hi = a.date_range
            fields = {
                "id": a.id,
                "title": a.title,
                "date": a.date,
                "date_min": lo,
                "date_max": hi,
                "event": a.event,
                "place": a.place,
                "source": a.source,
                "language": a.language,
                "url": a.url,
                "hash": a.content_hash,
                "text": a.text,
                "entities": p.entities,
            }
            spans = [(x.start, x.end) for x in p.sentences]
            items.append((fields, p.chunks, spans, chunk_vecs[c0 : c0 + nc], sent_vecs[s0 : s0 + ns]))
            c0, s0 = c0 + nc, s0 + ns
        self.upsert(items)

    def _term_ids(self, terms: set[str]) -> dict[str, int]:
        known: dict[str, int] = {}
        ts = sorted(terms)
        for i in range(0, len(ts), 500):
            flt = f"term in [{','.join(quote(t) for t in ts[i : i + 500])}]"
            known.update(
                {
                    r["term"]: int(r["id"])
                    for r in self.client.query(self.names["terms"], filter=flt, output_fields=["id", "term"])
                }
            )
        new = [t for t in ts if t not in known]
        if new:
            rows = []
            for t in new:
                known[t] = self.stats.next_term
                rows.append({"id": self.stats.next_term, "term": t, "df": 0, "_v": [1.0, 0.0]})
                self.stats.next_term += 1
            self.client.insert(self.names["terms"], rows)
        return known

    def _bump_counts(self, articles: int, chunks: int, sentences: int) -> None:
        c = self.manifest.counts
        c["articles"] = c.get("articles", 0) + articles
        c["chunks"] = c.get("chunks", 0) + chunks
        c["sentences"] = c.get("sentences", 0) + sentences

    def _save(self) -> None:
        _write_meta(self.client, self.names["meta"], self.manifest, self.stats, sorted(self.facets))
        for name in self.names.values():
            self.client.flush(name)


def _sparse_keys(v: Any) -> list[int]:
    if isinstance(v, dict):
        return [int(k) for k in v]
    return [int(k) for k in v.indices] if hasattr(v, "indices") else []

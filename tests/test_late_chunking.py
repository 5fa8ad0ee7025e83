"""Sentence vectors pooled from their chunk's forward pass ("late chunking", issue #10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from indexer import layout
from indexer.build import Prepared, build_index, prepare
from indexer.chunking import Chunk, Span
from indexer.corpus import Article, CorpusReport
from indexer.model import Embedder, EmbeddingCache, PassageJob, pool_spans
from indexer.settings import Settings
from search.engine import Engine

TEXT = (
    "Dreamforce 2019\n\nLe Moscone Center a accueilli 170 000 participants. "
    "Des activistes ont critiqué Salesforce devant l'entrée. Marc Benioff a répondu sur scène."
)


def test_pool_spans_takes_exactly_the_tokens_of_each_span(embedder: Embedder) -> None:
    """With one-hot token states the pooled vector shows which tokens were averaged."""
    prompt = embedder.passage_prompt
    enc = embedder.model.tokenizer([prompt + TEXT], return_offsets_mapping=True)
    offsets = np.asarray(enc["offset_mapping"][0])
    n = len(offsets)
    states = np.eye(n, dtype=np.float32)
    a = TEXT.index("Des activistes")
    b = TEXT.index("entrée.") + len("entrée.")
    (vec,) = pool_spans(states, offsets, [(a, b)], len(prompt))
    picked = np.flatnonzero(vec > 0)
    words = embedder.model.tokenizer.decode(np.asarray(enc["input_ids"][0])[picked]).strip()
    assert words == TEXT[a:b]
    assert np.allclose(vec[picked], 1 / np.sqrt(len(picked)))


@pytest.mark.model
def test_one_pass_gives_the_chunk_vector_and_contextual_sentence_vectors(embedder: Embedder) -> None:
    a = TEXT.index("Des activistes")
    b = TEXT.index("entrée.") + len("entrée.")
    (arr,) = embedder.forward_jobs([PassageJob(TEXT, ((a, b), (0, len(TEXT))))])
    assert arr.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(arr, axis=1), 1, atol=1e-5)
    # row 0 is the same vector the chunk always had
    assert float(arr[0] @ embedder.forward([embedder.passage_prompt + TEXT])[0]) > 0.9999
    # a span over the whole text pools nearly what the model's own pooling gives (no prompt/specials)
    assert float(arr[2] @ arr[0]) > 0.95
    # the sentence, read in context, is about the activists: it beats the other sentences for that question
    q = embedder.encode_query("qui a critiqué Salesforce ?")
    other = TEXT.index("Marc Benioff")
    (arr2,) = embedder.forward_jobs([PassageJob(TEXT, ((a, b), (other, len(TEXT))))])
    assert float(arr2[1] @ q) > float(arr2[2] @ q)


def test_overlapping_sentence_is_pooled_from_the_chunk_with_most_context() -> None:
    sents = [Span(i * 10, i * 10 + 9) for i in range(5)]
    tokens = [10, 10, 10, 10, 10]
    # chunk 0: sentences 0-3 (40 tokens); chunk 1: sentences 3-4 (20 tokens) — sentence 3 in both
    chunks = [Chunk(0, 39, 0, 3, 40), Chunk(30, 49, 3, 4, 20)]
    p = Prepared(Article(id="x", text="x" * 50), sents, chunks, tokens)
    assert p.sentence_owners() == [0, 0, 0, 0, 1]
    chunks = [Chunk(0, 19, 0, 1, 20), Chunk(10, 49, 1, 4, 40)]
    p = Prepared(Article(id="x", text="x" * 50), sents, chunks, tokens)
    assert p.sentence_owners() == [0, 1, 1, 1, 1]


@pytest.mark.model
def test_build_encodes_each_chunk_once_and_caches_it(tmp_path: Path, embedder: Embedder, settings: Settings) -> None:
    long = " ".join(f"La session {i} du salon a réuni des éditeurs et des libraires de Lyon." for i in range(40))
    arts = [Article(id="long", text=long, title="Salon du livre"), Article(id="seed", text=TEXT, title="Dreamforce")]
    own = Embedder(embedder.info, embedder.model, EmbeddingCache(tmp_path / "emb.sqlite"), embedder.precision)
    res = build_index(CorpusReport(arts), tmp_path / "i", own, settings, progress=False)
    m = res.manifest
    assert m.sentence_vectors == "late" and m.counts["chunks"] > 2
    assert m.counts["encoded_texts"] == m.counts["chunks"]  # one forward pass per chunk, none per sentence
    # tokens: the chunks' own, which the overlap makes a little more than the article's tokens
    prepared = prepare(arts, own, settings, progress=False)
    sentence_tokens = sum(sum(p.sentence_tokens) for p in prepared)
    assert sentence_tokens < m.counts["encoded_tokens"] < 1.5 * sentence_tokens
    again = build_index(CorpusReport(arts), tmp_path / "i", own, settings, progress=False)
    assert again.manifest.counts["encoded_texts"] == 0
    eng = Engine.open(tmp_path / "i", settings, own)
    assert np.array_equal(eng.store.sent_vecs, np.load(res.generation / layout.SENTENCES))
    assert np.isfinite(eng.store.sent_vecs.astype(np.float32)).all()
    assert np.allclose(np.linalg.norm(eng.store.sent_vecs.astype(np.float32), axis=1), 1, atol=2e-3)
    top = eng.search("qui a critiqué Salesforce ?", k=1)
    assert top.results[0].doc_id == "seed"
    assert top.answer is not None and "activistes" in top.answer.text


@pytest.mark.model
def test_engine_refuses_sentence_vectors_made_another_way(
    tmp_path: Path, embedder: Embedder, settings: Settings
) -> None:
    res = build_index(
        CorpusReport([Article(id="seed", text=TEXT, title="Dreamforce")]), tmp_path / "i", embedder, settings, False
    )
    mpath = res.generation / layout.MANIFEST
    data = json.loads(mpath.read_text())
    del data["sentence_vectors"]  # a manifest from before this field: sentences encoded on their own
    mpath.write_text(json.dumps(data))
    with pytest.raises(layout.IndexMismatch, match="SALON_SENTENCE_VECTORS=separate"):
        Engine.open(tmp_path / "i", settings, embedder, verify=False)
    old_way = settings.model_copy(update={"sentence_vectors": "separate"})
    assert Engine.open(tmp_path / "i", old_way, embedder, verify=False).manifest.sentence_vectors == "separate"

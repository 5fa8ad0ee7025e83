"""The live segment's bookkeeping, on rows made by hand: which writes it holds, what it hides
of the generation, what a rebase on a newer generation keeps, and that a snapshot never changes
once published (the model plays no part here; tests/test_writes.py runs the real path)."""

from __future__ import annotations

import numpy as np

from indexer.archive import Write
from indexer.corpus import Article
from indexer.live import LiveRows, LiveSegment, Rows

DIM = 8


def rows(doc: str, n_chunks: int, seed: int) -> LiveRows:
    rng = np.random.default_rng(seed)
    text = " ".join(f"mot{i}" for i in range(10 * n_chunks))
    return LiveRows(
        Article(doc, text, title=doc),
        [(i * 10, i * 10 + 9, i, i) for i in range(n_chunks)],
        [(i * 10, i * 10 + 9) for i in range(n_chunks)],
        rng.standard_normal((n_chunks, DIM)).astype(np.float32),
        rng.standard_normal((n_chunks, DIM)).astype(np.float32),
        [[f"t{seed}", "commun"] for _ in range(n_chunks)],
        [frozenset({f"t{seed}"}) for _ in range(n_chunks)],
        [("person", f"p{seed}", f"P{seed}")],
        [[(0, 4)]],
    )


def put(seq: int, doc: str, r: LiveRows) -> tuple[Write, LiveRows]:
    return Write(seq, f"t{seq}", "put", doc, r.article), r


def delete(seq: int, doc: str) -> tuple[Write, None]:
    return Write(seq, f"t{seq}", "delete", doc, None), None


def test_apply_replace_delete_and_snapshots_stay_as_published() -> None:
    seg = LiveSegment.empty(DIM)
    a1, b1, a2 = rows("a", 2, 1), rows("b", 3, 2), rows("a", 1, 3)
    s1 = seg.apply([put(1, "a", a1), put(2, "b", b1)])
    assert s1.by_id == {"a": 0, "b": 1} and s1.n_chunks == 5 and s1.seq == 2
    s2 = s1.apply([put(3, "a", a2), delete(4, "b")])
    assert s2.by_id == {"a": 2} and s2.shadowed == {"a", "b"} and s2.live_articles == 1
    assert list(s2.alive()) == [False, False, True]
    # the earlier snapshot still reads its own rows, unchanged by the appends after it
    assert s1.n_chunks == 5 and list(s1.alive()) == [True, True]
    np.testing.assert_array_equal(s1.data.chunk_vecs.array[2:5], b1.chunk_vecs)
    assert s2.data.entity_rows[("person", "p3")] == [2]


def test_rebase_keeps_only_what_the_new_generation_lacks() -> None:
    seg = LiveSegment.empty(DIM).apply(
        [put(1, "a", rows("a", 2, 1)), put(2, "b", rows("b", 1, 2)), put(3, "a", rows("a", 2, 3)), delete(4, "c")]
    )
    r = seg.rebase(2)  # the generation now holds writes 1 and 2
    assert r.base_seq == 2 and r.seq == 4
    assert r.by_id == {"a": 0} and r.shadowed == {"a", "c"} and r.n_articles == 1
    np.testing.assert_array_equal(r.data.chunk_vecs.array[:2], seg.data.chunk_vecs.array[3:5])
    assert r.data.sent_terms[:2] == [frozenset({"t3"})] * 2
    # a write the generation holds is skipped if it arrives after the rebase
    assert r.apply([put(2, "b", rows("b", 1, 2))]).by_id == {"a": 0}
    assert seg.rebase(4).by_id == {} and not seg.rebase(4).shadowed


def test_rows_grow_without_moving_what_readers_hold() -> None:
    r = Rows(2, np.float32)
    r.extend(np.ones((10, 2), np.float32))
    held = r.array
    r.extend(np.full((30, 2), 2, np.float32))  # grows into a new array
    assert r.n == 40 and held is not r.array
    np.testing.assert_array_equal(held[:10], r.array[:10])

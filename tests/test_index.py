from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from indexer import build as build_mod
from indexer import layout
from indexer.build import build_index
from indexer.settings import Settings
from search.engine import Engine
from search.types import Filters

pytestmark = pytest.mark.model


def small_corpus(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.md").write_text(
        "---\ntitle: Foire de Lyon\ndate: 2021-03\nevent: Foire\n---\n"
        "La foire de Lyon a accueilli 300 exposants. Les visiteurs ont goûté des vins.\n",
        encoding="utf-8",
    )
    (folder / "b.md").write_text(
        "---\ntitle: Salon du livre\ndate: 2018-05-02\nevent: Livre Paris\n---\n"
        "Le salon du livre de Paris a fermé ses portes. Les éditeurs étaient déçus." + extra,
        encoding="utf-8",
    )
    return folder


def test_round_trip_and_filters(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    idx = tmp_path / "index"
    res = build_index(small_corpus(tmp_path / "c"), idx, embedder, settings, progress=False)
    m = layout.Manifest.read(res.generation)
    assert m.counts["articles"] == 2 and m.counts["chunks"] == 2 and m.dim == 384
    assert m.model_id == embedder.info.model_id and m.format_version == layout.FORMAT_VERSION
    assert (idx / "CURRENT").read_text().strip() == res.generation.name
    eng = Engine.open(idx, settings, embedder)
    top = eng.search("combien d'exposants à Lyon ?", k=2).results
    assert top[0].doc_id == "a"
    assert eng.article("a").text[top[0].start : top[0].end] == top[0].passage
    only_b = eng.search("exposants", k=5, filters=Filters(event="livre paris")).results
    assert [r.doc_id for r in only_b] == ["b"]
    dated = eng.search("salon", k=5, filters=Filters(date_from="2020-01", date_to="2021-12-31")).results
    assert {r.doc_id for r in dated} == {"a"}
    assert eng.search("salon", k=5, filters=Filters(date_to="2017")).results == []


def test_refuses_other_model_or_format(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    res = build_index(small_corpus(tmp_path / "c"), tmp_path / "i", embedder, settings, progress=False)
    mpath = res.generation / layout.MANIFEST
    data = json.loads(mpath.read_text())
    data["model_id"] = "hub/some-other-model"
    mpath.write_text(json.dumps(data))
    with pytest.raises(layout.IndexMismatch, match="built with model"):
        Engine.open(tmp_path / "i", settings, embedder)
    data["format_version"] = 99
    mpath.write_text(json.dumps(data))
    with pytest.raises(layout.IndexMismatch, match="format version 99"):
        Engine.open(tmp_path / "i", settings, embedder)


def test_corrupted_generation_refused(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    res = build_index(small_corpus(tmp_path / "c"), tmp_path / "i", embedder, settings, progress=False)
    dense = res.generation / layout.DENSE
    dense.write_bytes(dense.read_bytes()[:100])
    with pytest.raises(layout.IndexCorrupt, match=r"dense\.faiss"):
        Engine.open(tmp_path / "i", settings, embedder)


def test_interrupted_build_leaves_served_index_intact(
    tmp_path: Path, embedder, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    idx = tmp_path / "i"
    first = build_index(small_corpus(tmp_path / "c"), idx, embedder, settings, progress=False)

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt  # what Ctrl-C in the middle of a build looks like

    monkeypatch.setattr(build_mod, "write_lexical", boom)
    with pytest.raises(KeyboardInterrupt):
        build_index(small_corpus(tmp_path / "c2", extra=" Nouveau."), idx, embedder, settings, progress=False)
    assert (idx / "CURRENT").read_text().strip() == first.generation.name
    assert not list(idx.glob(".build-*"))
    eng = Engine.open(idx, settings, embedder)
    assert eng.generation == first.generation
    assert eng.search("foire de Lyon", k=1).results[0].doc_id == "a"


def test_second_build_is_locked_out(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    idx = tmp_path / "i"
    with layout.build_lock(idx), pytest.raises(layout.BuildLocked, match=r"already building.*--wait"):
        build_index(small_corpus(tmp_path / "c"), idx, embedder, settings, progress=False)


def test_second_build_can_wait_for_the_first(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    idx = tmp_path / "i"
    c = small_corpus(tmp_path / "c")
    done: list[float] = []
    with layout.build_lock(idx):
        t = threading.Thread(
            target=lambda: done.append(
                build_index(c, idx, embedder, settings, progress=False, wait=True).manifest.build_seconds
            )
        )
        t.start()
        time.sleep(1.0)
        assert not done  # still waiting for the lock held here
    t.join(60)
    assert done and layout.current_generation(idx).name.startswith("gen-")


def test_old_generations_pruned(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    s = settings.model_copy(update={"keep_generations": 2})
    c = small_corpus(tmp_path / "c")
    gens = [build_index(c, tmp_path / "i", embedder, s, progress=False).generation for _ in range(3)]
    assert sorted(p.name for p in (tmp_path / "i").glob("gen-*")) == sorted(g.name for g in gens[1:])
    shutil.rmtree(gens[2])
    with pytest.raises(layout.IndexCorrupt):
        Engine.open(tmp_path / "i", s, embedder)


def test_incremental_rebuild_matches_full_rebuild(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from indexer.model import Embedder, EmbeddingCache

    # a cache of its own, so what was encoded by other tests or runs cannot hide work here
    embedder = Embedder(embedder.info, embedder.model, EmbeddingCache(tmp_path / "emb.sqlite"))
    c = small_corpus(tmp_path / "c")
    (c / "u.md").write_text("---\ntitle: Inchangé\n---\nLe salon du chocolat reste à Lyon.", encoding="utf-8")
    build_index(c, tmp_path / "inc", embedder, settings, progress=False)
    (c / "b.md").unlink()
    (c / "a.md").write_text((c / "a.md").read_text() + " Un concours de fromages a eu lieu.", encoding="utf-8")
    (c / "n.md").write_text("---\ntitle: Nouveau\n---\nLe salon nautique ouvre à Paris.", encoding="utf-8")
    inc = build_index(c, tmp_path / "inc", embedder, settings, progress=False)
    assert inc.changes == {"added": 1, "changed": 1, "removed": 1, "unchanged": 1}
    # only the new and changed chunks went through the model (each once: sentences come from its pass)
    assert 0 < inc.manifest.counts["encoded_texts"] < inc.manifest.counts["chunks"]
    uncached = Embedder(embedder.info, embedder.model, None)
    full = build_index(c, tmp_path / "full", uncached, settings, progress=False)
    assert full.manifest.counts["encoded_texts"] == full.manifest.counts["chunks"]
    e1, e2 = Engine.open(tmp_path / "inc", settings, embedder), Engine.open(tmp_path / "full", settings, embedder)
    for q in ("fromages", "salon nautique à Paris", "qui a exposé à Lyon ?", "livre"):
        r1, r2 = e1.search(q, k=5), e2.search(q, k=5)
        # the same text rebuilt another way keeps its passage ids (incremental vs full, new rows)
        assert [r.passage_id for r in r1.results] == [r.passage_id for r in r2.results]
        assert all(r.passage_id == f"{r.doc_id}:{r.start}-{r.end}" for r in r1.results)
        # bf16 batches: a text's vector moves by ~1e-4 with the batch it was encoded in (the
        # incremental build encodes other batches than the full one); rankings are identical.
        assert [r.score for r in r1.results] == pytest.approx([r.score for r in r2.results], abs=2e-3)
    assert all(r.doc_id != "b" for r in e1.search("salon du livre", k=5).results)


def test_cli_build_summarises_bad_files_and_exits_8(tmp_path: Path, settings: Settings) -> None:
    import os

    from click.testing import CliRunner

    from salon.cli import main

    c = small_corpus(tmp_path / "c")
    (c / "huge.md").write_text("Un salon immense.\n\n" * 1_200_000, encoding="utf-8")  # ≈ 21 MB
    (c / "junk.txt").write_bytes(b"\x00\xff\x00binary" * 100)
    (c / "legacy.txt").write_bytes("Le café du salon, été 2012.".encode("cp1252"))
    (c / "empty.md").write_text("", encoding="utf-8")
    os.symlink(c / "a.md", c / "lien.md")
    out = CliRunner().invoke(
        main, ["--cache-dir", str(settings.cache_dir), "index", str(c), "--index-dir", str(tmp_path / "i"), "-q"]
    )
    assert out.exit_code == 8, out.output
    lines = out.output.splitlines()
    for name, why in [
        ("huge.md", "MB limit"),
        ("junk.txt", "binary"),
        ("empty.md", "empty"),
        ("lien.md", "symbolic link"),
    ]:
        assert any(line.startswith(f"skipped: {name}: ") and why in line for line in lines), (name, out.output)
    assert any(line.startswith("warning: legacy.txt: ") and "cp1252" in line for line in lines)
    assert "4 file(s) skipped" in out.output
    engine = Engine.open(tmp_path / "i", settings)
    assert {a.doc_id for a in engine.store.view().articles} == {"a", "b", "legacy"}
    assert engine.search("café du salon", k=1).results[0].doc_id == "legacy"


def test_hnsw_index_gives_the_flat_results_and_honours_filters(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import faiss

    from tests.conftest import CORPUS

    c = tmp_path / "c"
    shutil.copytree(CORPUS, c)
    small_corpus(c)
    flat_s = settings.model_copy(update={"ann": "flat"})
    hnsw_s = settings.model_copy(update={"ann": "hnsw"})
    build_index(c, tmp_path / "flat", embedder, flat_s, progress=False)
    res = build_index(c, tmp_path / "hnsw", embedder, hnsw_s, progress=False)
    assert res.manifest.ann == "hnsw"
    flat, hnsw = Engine.open(tmp_path / "flat", flat_s, embedder), Engine.open(tmp_path / "hnsw", hnsw_s, embedder)
    assert isinstance(hnsw.store.dense_index, faiss.IndexHNSW) and isinstance(flat.store.dense_index, faiss.IndexFlat)
    for q in ("qui a critiqué Salesforce ?", "digital native", "foire de Lyon"):
        a, b = flat.search(q, k=5), hnsw.search(q, k=5)
        assert [(r.doc_id, r.start) for r in a.results] == [(r.doc_id, r.start) for r in b.results]
    only = hnsw.search("exposants", k=5, filters=Filters(event="Foire")).results
    assert [r.doc_id for r in only] == ["a"]
    # auto switches by size: this corpus is far under the flat limit, and over a limit of 1
    assert build_mod.ann_kind(10, settings) == "flat"
    assert build_mod.ann_kind(10, settings.model_copy(update={"ann_flat_max": 1})) == "hnsw"

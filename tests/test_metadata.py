"""Files on disk: sha256, atomic writes and folder swaps, and metadata refused when a field is
missing or of the wrong type (index manifest, Milvus statistics, the reader's reader.json)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from indexer import files, layout


def _manifest() -> layout.Manifest:
    return layout.Manifest(
        format_version=layout.FORMAT_VERSION,
        model_name="m",
        model_id="m@1",
        model_checksum="abc",
        dim=384,
        normalized=True,
        metric="ip",
        ann="flat",
        chunking={"chunk_tokens": 200},
        analyzer="fr-1",
        counts={"chunks": 3},
        built_at="2026-01-01T00:00:00+00:00",
        build_seconds=1.5,
        corpus="corpus",
    )


def test_sha256_of_a_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"salon" * 100_000)
    assert files.sha256_file(p) == hashlib.sha256(b"salon" * 100_000).hexdigest()


def test_an_atomic_write_replaces_the_file_or_leaves_it(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "CURRENT"
    files.write_atomic(p, "gen-1\n")
    assert p.read_text(encoding="utf-8") == "gen-1\n"
    with pytest.raises(RuntimeError), files.atomic_path(p) as tmp:
        tmp.write_text("gen-2, half written", encoding="utf-8")
        raise RuntimeError("crash while writing")
    assert p.read_text(encoding="utf-8") == "gen-1\n"
    assert sorted(x.name for x in p.parent.iterdir()) == ["CURRENT"]  # no temporary file left


def test_a_staged_folder_replaces_the_whole_folder_or_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "artifact"
    dest.mkdir()
    (dest / "weights").write_text("old", encoding="utf-8")
    (dest / "meta").write_text("old", encoding="utf-8")
    (dest / "card.md").write_text("card", encoding="utf-8")
    with pytest.raises(RuntimeError), files.staged_folder(dest) as stage:
        (stage / "weights").write_text("new", encoding="utf-8")
        raise RuntimeError("crash between the two files")
    assert (dest / "weights").read_text(encoding="utf-8") == "old"
    with files.staged_folder(dest) as stage:
        assert (stage / "card.md").is_file()  # the files not rewritten come along
        (stage / "weights").write_text("new", encoding="utf-8")
        (stage / "meta").write_text("new", encoding="utf-8")
        assert (dest / "weights").read_text(encoding="utf-8") == "old"  # nothing changes until the end
    assert {p.name: p.read_text(encoding="utf-8") for p in dest.iterdir()} == {
        "weights": "new",
        "meta": "new",
        "card.md": "card",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
    fresh = tmp_path / "fresh"
    with files.staged_folder(fresh) as stage:
        (stage / "x").write_text("x", encoding="utf-8")
    assert (fresh / "x").is_file()


def test_a_manifest_field_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    m = _manifest()
    m.write(tmp_path)
    assert layout.Manifest.read(tmp_path) == m
    for field, bad in (("dim", "384"), ("counts", {"chunks": "3"}), ("normalized", 1)):
        data = {**asdict(m), field: bad}
        (tmp_path / layout.MANIFEST).write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(layout.IndexCorrupt, match=field):
            layout.Manifest.read(tmp_path)
    data = asdict(m)
    del data["dim"]
    (tmp_path / layout.MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(layout.IndexCorrupt, match="dim: field required"):
        layout.Manifest.read(tmp_path)


def test_milvus_statistics_of_the_wrong_type_are_refused() -> None:
    from indexer.milvus import Stats

    good = Stats(10, 10, 40, 3, 120, 17.5)
    assert Stats.loads(json.dumps(asdict(good)), "gen") == good
    with pytest.raises(layout.IndexCorrupt, match="avgdl"):
        Stats.loads(json.dumps({**asdict(good), "avgdl": "17.5"}), "gen")
    with pytest.raises(layout.IndexCorrupt, match="n_chunks"):
        Stats.loads(json.dumps({**asdict(good), "n_chunks": 10.5}), "gen")


def test_reader_metadata_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    from search import reader as R

    (tmp_path / R.WEIGHTS).write_bytes(b"weights")
    meta = {
        "base_model_id": "m@1",
        "format": R.FORMAT,
        "sha256": files.sha256_file(tmp_path / R.WEIGHTS),
        "depth": 12,
        "titles": False,
        "calibration": {"features": ["margin"], "weights": [1.5], "bias": -0.5, "threshold": 0.6},
        "command": "kept as written",
    }
    (tmp_path / R.META).write_text(json.dumps(meta), encoding="utf-8")
    assert R.read_meta(tmp_path) == meta
    for bad in ({"depth": "12"}, {"titles": "no"}, {"calibration": {**meta["calibration"], "threshold": "0.6"}}):
        (tmp_path / R.META).write_text(json.dumps({**meta, **bad}), encoding="utf-8")
        with pytest.raises(R.ReaderError, match=next(iter(bad))):
            R.read_meta(tmp_path)


def test_a_milvus_generations_meta_is_read_validated() -> None:
    from indexer import milvus as mv

    class Client:  # the one call read_meta makes, as milvus-lite answers it
        def __init__(self, rows: dict[str, str]) -> None:
            self.rows = rows

        def query(self, name: str, filter: str, output_fields: list[str]) -> list[dict[str, str]]:
            return [{"key": k, "value": v} for k, v in self.rows.items()]

    stats = mv.Stats(10, 10, 40, 3, 120, 17.5)
    rows = {"manifest": json.dumps(asdict(_manifest())), "stats": json.dumps(asdict(stats)), "facets": '["Lyon"]'}
    assert mv.read_meta(Client(rows), "salon_g1_meta", "g1") == (_manifest(), stats, ["Lyon"])
    bad = {**rows, "manifest": json.dumps({**asdict(_manifest()), "counts": [3]})}
    with pytest.raises(layout.IndexCorrupt, match=r"Milvus generation g1: .*counts"):
        mv.read_meta(Client(bad), "salon_g1_meta", "g1")
    with pytest.raises(layout.IndexCorrupt, match="no manifest"):
        mv.read_meta(Client({"stats": rows["stats"]}), "salon_g1_meta", "g1")

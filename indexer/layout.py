"""The on-disk index: generation folders, the CURRENT pointer, the manifest, the build lock.

index_dir/
  CURRENT            name of the generation being served (replaced atomically)
  .lock              held by a running build
  gen-<time>-<id>/   manifest.json, dense.faiss, sentences.npy, lexical/, store.sqlite (its
                     entities table is optional: generations built before it lack it),
                     sentence_terms.npy (optional: generations built before it lack it)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from indexer.files import first_mismatch, parse_json, sha256_file, write_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
POINTER = "CURRENT"
DENSE = "dense.faiss"
SENTENCES = "sentences.npy"
LEXICAL = "lexical"
STORE = "store.sqlite"
# Each sentence's distinct index terms, so a search never re-analyses a stored sentence: UTF-8,
# terms joined by TERM_SEP, sentences (in row order) each followed by SENTENCE_END. Neither byte
# occurs in UTF-8 text that analysis can produce (tokens are word characters).
SENTENCE_TERMS = "sentence_terms.npy"
TERM_SEP, SENTENCE_END = "\x1f", "\x1e"


class IndexError_(RuntimeError):
    """Base for index problems the operator must act on."""


class IndexMissing(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class BuildLocked(IndexError_):
    pass


@dataclass
class Manifest:
    # Read back strictly (``parse_json``): a field missing, unknown or of another type is refused.
    __pydantic_config__ = ConfigDict(strict=True, extra="forbid")

    format_version: int
    model_name: str
    model_id: str
    model_checksum: str
    dim: int
    normalized: bool
    metric: str
    ann: str
    chunking: dict[str, Any]
    analyzer: str
    counts: dict[str, int]
    built_at: str
    build_seconds: float
    corpus: str
    files: dict[str, str] = field(default_factory=dict)  # relative path → sha256
    ann_seconds: float = 0.0
    # How sentence vectors were made (see indexer/build.py); manifests written before this field
    # existed encoded every sentence on its own.
    sentence_vectors: str = "separate"
    # What found the articles' entities (indexer/entities.py model_id); '' for a build without
    # them, and for generations built before entities existed: they serve no facets.
    entities: str = ""
    # The last write of the index folder's archive (indexer/archive.py) this generation holds; a
    # server replays the writes after it into its live segment.
    archive_seq: int = 0

    def write(self, folder: Path) -> None:
        write_atomic(folder / MANIFEST, json.dumps(asdict(self), indent=2, ensure_ascii=False))

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            text = path.read_text(encoding="utf-8")
            data = json.loads(text)
        except FileNotFoundError as exc:
            raise IndexMissing(f"{folder} has no {MANIFEST}: not a Salon index") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise IndexCorrupt(f"{path} is unreadable ({exc}); rebuild with `salon index`") from exc
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise IndexMismatch(
                f"index {folder} has format version {version}, this Salon reads "
                f"version {FORMAT_VERSION}; rebuild it with `salon index`"
            )
        return cls.loads(text, str(path))

    @classmethod
    def loads(cls, text: str, where: str) -> Manifest:
        """The manifest in JSON ``text`` (read from ``where``); IndexCorrupt if it is not one."""
        return parse_json(cls, text, lambda problem: IndexCorrupt(f"{where}: {problem}; rebuild with `salon index`"))


def checksum_tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def verify(folder: Path, manifest: Manifest) -> None:
    """Refuse a generation whose files do not match the manifest's checksums."""
    bad = first_mismatch(folder, manifest.files)
    if bad is not None and bad[1] == "missing":
        raise IndexCorrupt(f"index {folder.name} is missing {bad[0]}; rebuild with `salon index`")
    if bad is not None:
        raise IndexCorrupt(f"index {folder.name}: {bad[0]} is damaged (checksum mismatch); rebuild with `salon index`")


def current_generation(index_dir: Path) -> Path:
    """The folder being served: ``index_dir`` itself if it is a generation, else CURRENT's target."""
    if (index_dir / MANIFEST).is_file():
        return index_dir
    pointer = index_dir / POINTER
    if not pointer.is_file():
        raise IndexMissing(f"no index in {index_dir}; build one with `salon index`")
    name = pointer.read_text(encoding="utf-8").strip()
    gen = index_dir / name
    if not name or "/" in name or not gen.is_dir():
        raise IndexCorrupt(f"{pointer} names {name!r}, which is not a generation; run `salon index`")
    return gen


def publish(index_dir: Path, gen: Path, keep: int) -> None:
    """Make ``gen`` the served generation (one atomic rename), then prune old ones."""
    write_atomic(index_dir / POINTER, gen.name + "\n")
    gens = sorted((p for p in index_dir.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
    for old in gens[: max(0, len(gens) - keep)]:
        if old.name != gen.name:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in index_dir.glob(".build-*"):  # leftovers of builds that were killed
        if tmp.is_dir() and not _pid_alive(tmp.name.rsplit("-", 1)[-1]):
            shutil.rmtree(tmp, ignore_errors=True)


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def build_lock(index_dir: Path, wait: bool = False) -> Iterator[None]:
    """One build at a time per index folder; the OS drops the lock if the builder dies."""
    index_dir.mkdir(parents=True, exist_ok=True)
    f = (index_dir / ".lock").open("a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError as exc:
            raise BuildLocked(
                f"another `salon index` is already building {index_dir}; wait for it or pass --wait"
            ) from exc
        yield
    finally:
        f.close()

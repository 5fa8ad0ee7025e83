"""Files written so that a crash leaves the old version or the new one, never half of either.

A file is written beside its destination, fsynced, renamed over it, and the folder fsynced
(``atomic_path``, ``write_atomic``). A folder whose files must change together (an artifact
whose metadata records its weights' sha256) is changed as a copy and swapped in whole
(``staged_folder``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import TypeAdapter, ValidationError

T = TypeVar("T")


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def parse_json(kind: type[T], text: str | bytes, refuse: Callable[[str], Exception]) -> T:
    """``kind`` (a dataclass or pydantic model) read from JSON ``text`` with pydantic, so a field
    missing or of the wrong type is refused, by raising ``refuse(what is wrong)``."""
    try:
        return TypeAdapter(kind).validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'document'}: {e['msg'].lower()}" for e in exc.errors()
        )
        raise refuse(f"{exc.error_count()} field(s) not as expected ({problems})") from exc


def first_mismatch(folder: Path, digests: dict[str, str]) -> tuple[str, str] | None:
    """The first file of ``digests`` (path relative to ``folder`` → sha256) that is not there as
    recorded: (its path, "missing" or "damaged"); None when every one is."""
    for rel, digest in digests.items():
        p = folder / rel
        if not p.is_file():
            return rel, "missing"
        if sha256_file(p) != digest:
            return rel, "damaged"
    return None


def fsync_dir(path: Path) -> None:
    """Make the renames and new names in folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _beside(path: Path, tag: str) -> Path:
    # pid and a random part: two processes (two first starts exporting the same ONNX file) never
    # share a temporary name
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for the caller to write the new file at; when the block
    ends without error it is fsynced and renamed over ``path``, else removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8) in one rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where not offered."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this kernel or file system cannot
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def replace_folder(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest`` (same parent folder), the old ``dest`` removed.

    Where the kernel exchanges two names at once, ``dest`` is at every instant the whole old
    folder or the whole new one. Elsewhere the old folder is renamed away first: a crash between
    the two renames leaves it beside ``dest`` (``.{name}.old-…``), not half-replaced.
    """
    if not dest.exists():
        os.rename(new, dest)
    elif _exchange(new, dest):
        shutil.rmtree(new)  # the old folder, now under the new one's name
    else:
        old = _beside(dest, "old")
        os.rename(dest, old)
        os.rename(new, dest)
        shutil.rmtree(old)
    fsync_dir(dest.parent)


@contextmanager
def staged_folder(dest: Path, copy: bool = True) -> Iterator[Path]:
    """A folder beside ``dest`` to write the new version in (a copy of ``dest`` when ``copy``);
    when the block ends without error its files are fsynced and it replaces ``dest`` in one
    step (``replace_folder``), else it is removed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = _beside(dest, "new")
    try:
        if copy and dest.is_dir():
            shutil.copytree(dest, stage, symlinks=True)
        else:
            stage.mkdir()
        yield stage
        for p in stage.rglob("*"):
            if p.is_file() and not p.is_symlink():
                fsync_file(p)
        for d in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
            fsync_dir(d)
        replace_folder(stage, dest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

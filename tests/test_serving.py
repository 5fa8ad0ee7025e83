"""Serving without PyTorch: the files `salon model` prepares, their checks, and a server that
answers with torch made unimportable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from indexer.model import ModelError
from indexer.settings import Settings
from tests.conftest import ROOT

pytestmark = pytest.mark.model

QUESTIONS = ("qui a critiqué Salesforce ?", "Salon du e-Marketing 2012", "Who spoke at Dreamforce?")


def test_serving_query_vectors_are_pytorchs(engine, embedder) -> None:  # type: ignore[no-untyped-def]
    """The ONNX graph over the shared table gives the vectors PyTorch gives."""
    for q in QUESTIONS:
        assert float(engine.runtime.encode_query(q) @ embedder.encode_query(q)) >= 0.9999


def test_missing_or_damaged_serving_files_are_refused_then_remade(embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Nothing is made at serve time: a missing or damaged file is a clear error naming
    `salon model`, which makes it again (checked against PyTorch)."""
    from indexer import serving
    from search.runtime import Runtime

    s = Settings(cache_dir=tmp_path / "cache")
    folder = serving.serving_dir(s, embedder.info.model_id)
    with pytest.raises(ModelError, match="salon model"):
        Runtime(folder)
    assert serving.prepare(embedder, s) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [serving.MANIFEST, serving.TABLE, serving.QUERY, serving.TOKENIZER]
    )
    fresh = Runtime(folder)
    assert float(fresh.encode_query(QUESTIONS[0]) @ embedder.encode_query(QUESTIONS[0])) >= 0.9999

    query = folder / serving.QUERY
    data = bytearray(query.read_bytes())
    data[len(data) // 2] ^= 0xFF
    query.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=r"damaged.*salon model"):
        Runtime(folder)
    (folder / serving.TABLE).unlink()
    with pytest.raises(ModelError, match=r"missing.*salon model"):
        Runtime(folder)
    serving.prepare(embedder, s)  # what `salon model` runs: made again
    assert float(Runtime(folder).encode_query("Dreamforce") @ embedder.encode_query("Dreamforce")) >= 0.9999


def test_unprepared_reader_is_named_and_sentences_answer(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A reader whose ONNX graph was not prepared is not exported on the serving path: the
    engine says to run `salon model` and answers with sentences."""
    import shutil

    from indexer import serving
    from search.answer import AnswerFinder
    from search.reader import ARTIFACT_DIR
    from search.runtime import Runtime

    other = tmp_path / "reader"
    shutil.copytree(ARTIFACT_DIR, other)
    # the engine's serving files alone, without the reader graphs other tests prepared beside them
    folder = tmp_path / "serving"
    folder.mkdir()
    for name in (serving.MANIFEST, serving.TABLE, serving.QUERY, serving.TOKENIZER):
        (folder / name).symlink_to(engine.runtime.folder / name)
    s = engine.settings.model_copy(update={"reader_dir": other})
    finder = AnswerFinder(s, Runtime(folder))
    assert finder.reader is None and "salon model" in (finder.reader_error or "")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_answers_with_torch_unimportable(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`salon serve` on loopback, with torch, transformers and sentence-transformers made
    unimportable: it starts, answers the seed question, and maps no PyTorch library."""
    blocked = tmp_path / "blocked"
    for name in ("torch", "transformers", "sentence_transformers"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(blocked), str(ROOT)]),
        "SALON_INDEX_DIR": str(engine.settings.index_dir),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "salon.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and answer is None:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/search", params={"q": "qui a critiqué Salesforce ?"}, timeout=30
                )
                answer = r.json()["answer"]
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer["span_text"] == "des activistes"
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "libtorch" not in maps
    finally:
        proc.terminate()
        proc.wait(timeout=30)

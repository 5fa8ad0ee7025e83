"""`kill -9` of `salon index` at random points never damages the served index."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer import layout
from tests.conftest import CORPUS

pytestmark = pytest.mark.model


def salon(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "salon.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_kill_9_during_builds(tmp_path: Path, settings, engine) -> None:  # type: ignore[no-untyped-def]
    from search.engine import Engine

    env = {**os.environ, "SALON_CACHE_DIR": str(settings.cache_dir)}
    idx = tmp_path / "index"
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    assert salon("index", str(corpus), "--index-dir", str(idx), "-q", env=env).wait(120) == 0
    assert layout.current_generation(idx).name.startswith("gen-")
    rng = random.Random(7)
    for i in range(3):
        # a changed article, so the killed build has real work (encoding) to be caught in
        (corpus / f"extra-{i}.md").write_text(
            f"---\ntitle: Ajout {i}\n---\nLe salon numéro {i} a ouvert ses portes.", encoding="utf-8"
        )
        proc = salon("index", str(corpus), "--index-dir", str(idx), "-q", "--full", env=env)
        time.sleep(rng.uniform(1.0, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        # the pointer names either the old generation or a complete new one, and it opens
        eng = Engine.open(idx, settings, engine.runtime)
        assert eng.search("qui a critiqué Salesforce ?", k=1).results[0].doc_id == "dreamforce-2019"
    assert salon("index", str(corpus), "--index-dir", str(idx), "-q", env=env).wait(120) == 0
    final = Engine.open(idx, settings, engine.runtime)
    assert final.counts["articles"] == 5  # the two articles and the three added ones
    assert not [p for p in idx.glob(".build-*")]  # a later build cleared the killed builds' leftovers


def test_short_load_with_rebuild_and_reload_in_the_middle() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import load  # type: ignore[import-not-found]

    levels, info = load.run(240, [1, 8], reload_mid=True, max_seconds=240)
    assert sum(len(lv.latencies) for lv in levels) == 240
    assert all(lv.failures == 0 for lv in levels), [lv.statuses for lv in levels]
    assert all(set(lv.statuses) <= {200, 422} for lv in levels)
    assert "error" not in info and info["generation"] != info["before"]
    assert info["served_after"] == info["generation"] and info["new_article_found"]

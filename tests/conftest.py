"""Shared fixtures: the real model and a real index of corpus/, built once per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = ROOT / "corpus"

XSS_ARTICLE = """---
id: xss-test
title: "<script>alert(1)</script> Salon piégé"
date: 2021-06-01
event: "Salon <img src=x onerror=alert(2)>"
place: Lyon
source: test
language: fr
url: "javascript:alert(6)"
---
Le salon piégé de Lyon a accueilli <script>alert(3)</script> des exposants.

Un visiteur a écrit "><img src=x onerror=alert(4)> dans le livre d'or du salon piégé.
"""


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The model folder and the embedding cache live in the user cache (shared across runs),
    # the index in a temporary folder of its own.
    return Settings(index_dir=tmp_path_factory.mktemp("index"), question_wait=0.2)


@pytest.fixture(scope="session")
def embedder(settings: Settings):  # type: ignore[no-untyped-def]
    from indexer.model import Embedder

    return Embedder.from_settings(settings)


@pytest.fixture(scope="session")
def corpus_with_xss(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    for p in CORPUS.glob("*.md"):
        shutil.copy(p, folder / p.name)
    (folder / "xss.md").write_text(XSS_ARTICLE, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def engine(settings: Settings, embedder, corpus_with_xss: Path):  # type: ignore[no-untyped-def]
    from indexer.build import build_index
    from search.engine import Engine

    build_index(corpus_with_xss, settings.index_dir, embedder, settings, progress=False)
    eng = Engine.open(settings.index_dir, settings, embedder)
    eng.answers.warm()
    return eng


@pytest.fixture(scope="session")
def app(settings: Settings, engine):  # type: ignore[no-untyped-def]
    from web.app import State, create_app

    return create_app(settings, State(settings, engine.runtime, engine, None))


@pytest.fixture(scope="session")
def client(app) -> Iterator:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c

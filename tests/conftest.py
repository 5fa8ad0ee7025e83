"""Shared fixtures: the real model and a real index of corpus/, built once per session; the
page's server and Debian's chromium for the browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
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


# The page's tests add one English article to the corpus and its XSS article: a passage whose
# language is not the page's, a full date and a web address to link.
ENGLISH_ARTICLE = """---
id: lyon-book-fair-2021
title: "Lyon Book Fair 2021: small publishers in the spotlight"
date: 2021-03-14
event: Lyon Book Fair 2021
place: Lyon, Part-Dieu
source: test
language: en
url: "https://example.org/lyon-book-fair-2021"
---
The Lyon Book Fair opened its doors to more than two hundred small publishers this spring, after a
year without visitors. Readers queued in the rain outside the hall to meet the authors.

Most stands sold poetry and children's books, and several publishers said the fair was their best
week of the year.
"""


@pytest.fixture(scope="session")
def web_engine(settings: Settings, embedder, corpus_with_xss: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from indexer.build import build_index
    from search.engine import Engine

    corpus = tmp_path_factory.mktemp("web-corpus")
    for p in corpus_with_xss.iterdir():
        shutil.copy(p, corpus / p.name)
    (corpus / "lyon-book-fair-2021.md").write_text(ENGLISH_ARTICLE, encoding="utf-8")
    s = settings.model_copy(update={"index_dir": tmp_path_factory.mktemp("web-index")})
    build_index(corpus, s.index_dir, embedder, s, progress=False)
    eng = Engine.open(s.index_dir, s, embedder)
    eng.answers.warm()
    return eng


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def server(web_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app under uvicorn on a free port of 127.0.0.1 (never another address)."""
    import uvicorn

    from web.app import State, create_app

    s = web_engine.settings
    app = create_app(s, State(s, web_engine.runtime, web_engine, None))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(10)


# Per module, as Playwright's sync API holds an event loop on the main thread while it runs.
@pytest.fixture(scope="module")
def browser() -> Iterator:  # type: ignore[type-arg]
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: `make test` installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A desktop page in French, recording any dialog a script opens."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, locale="fr-FR")
    pg = ctx.new_page()
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # type: ignore[attr-defined]
    yield pg
    ctx.close()

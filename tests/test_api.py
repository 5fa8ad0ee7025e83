from __future__ import annotations

import pytest

pytestmark = pytest.mark.model

ACTIVISTS = "des activistes critiquant le récent contrat"


def test_search_json_shape_and_answer(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/search", params={"q": "qui a critiqué Salesforce ?", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"query", "took_ms", "total", "answer", "results"}
    top = body["results"][0]
    assert ACTIVISTS in top["passage"]
    ans = [h for h in top["highlights"] if h["kind"] == "answer"]
    assert ACTIVISTS in top["passage"][ans[0]["start"] : ans[0]["end"]]
    assert body["answer"]["doc_id"] == top["doc_id"] and ACTIVISTS in body["answer"]["text"]
    art = client.get(f"/articles/{top['doc_id']}").json()
    assert art["text"][top["start"] : top["end"]] == top["passage"]
    assert art["text"][body["answer"]["start"] : body["answer"]["end"]] == body["answer"]["text"]


@pytest.mark.parametrize(
    ("params", "code", "param"),
    [
        ({}, "empty_query", "q"),
        ({"q": ""}, "empty_query", "q"),
        ({"q": "   "}, "empty_query", "q"),
        ({"q": "x" * 501}, "query_too_long", "q"),
        ({"q": "salon", "k": 0}, "invalid_parameter", "k"),
        ({"q": "salon", "k": 51}, "invalid_parameter", "k"),
        ({"q": "salon", "k": "dix"}, "invalid_parameter", "k"),
        ({"q": "salon", "offset": -1}, "invalid_parameter", "offset"),
        ({"q": "salon", "date_from": "2019-13"}, "invalid_parameter", "date_from"),
        ({"q": "salon", "date_to": "hier"}, "invalid_parameter", "date_to"),
    ],
)
def test_one_code_per_fault(client, params: dict, code: str, param: str) -> None:  # type: ignore[no-untyped-def]
    """A fault has one code whichever layer catches it (FastAPI's validation or the engine's),
    the parameter named in details, an English message, the request id of the header."""
    r = client.get("/search", params=params)
    assert r.status_code == 422
    err = r.json()["error"]
    assert set(err) == {"code", "message", "request_id", "details"} and err["code"] == code
    assert [d["param"] for d in err["details"]] == [param]
    assert err["message"].isascii() and " / " not in err["message"]  # English, not the old FR / EN pair
    assert err["request_id"] == r.headers["x-request-id"]


def test_total_and_passage_ids(client) -> None:  # type: ignore[no-untyped-def]
    """The shipped corpus has fewer passages than retrieval's depth: the count is exact. A
    passage id names the article and offsets, so it resolves against /articles."""
    body = client.get("/search", params={"q": "qui a critiqué Salesforce ?"}).json()
    assert body["total"]["relation"] == "eq" and body["total"]["value"] >= len(body["results"])
    lexical = client.get("/search", params={"q": "activistes", "mode": "lexical"}).json()
    assert lexical["total"] == {"value": 1, "relation": "eq"}  # one passage holds the word
    for r in body["results"]:
        assert r["passage_id"] == f"{r['doc_id']}:{r['start']}-{r['end']}"
    a = body["answer"]
    assert 0 < a["confidence"] <= 1 and "score" not in a
    assert a["passage_id"] in {r["passage_id"] for r in body["results"]}
    assert client.get(f"/articles/{a['doc_id']}").json()["doc_id"] == a["doc_id"]


def test_cache_validators(client) -> None:  # type: ignore[no-untyped-def]
    """Answers are fixed for a served generation: an ETag, and 304 when the client has it."""
    r = client.get("/search", params={"q": "Dreamforce"})
    tag = r.headers["etag"]
    assert tag.startswith('W/"') and r.headers["cache-control"] == "no-cache"
    again = client.get("/search", params={"q": "Dreamforce"}, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["etag"] == tag and not again.content
    other = client.get("/search", params={"q": "Dreamforce", "k": 3}, headers={"If-None-Match": tag})
    assert other.status_code == 200 and other.headers["etag"] != tag
    art = client.get("/articles/dreamforce-2019")
    assert client.get("/articles/dreamforce-2019", headers={"If-None-Match": art.headers["etag"]}).status_code == 304


def test_question_cap_answers_429(client) -> None:  # type: ignore[no-untyped-def]
    """With every question slot taken, a question waits SALON_QUESTION_WAIT and gets 429 with
    Retry-After; a keyword search (no reader) is not held back."""
    st = client.app.state.salon
    held = 0
    while st.questions.acquire(blocking=False):
        held += 1
    try:
        r = client.get("/search", params={"q": "qui a critiqué Salesforce ?"})
        assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_requests"
        assert int(r.headers["retry-after"]) >= 1
        assert client.get("/search", params={"q": "Dreamforce Salesforce"}).status_code == 200
    finally:
        for _ in range(held):
            st.questions.release()
    assert held == st.settings.max_questions
    assert client.get("/search", params={"q": "qui a critiqué Salesforce ?"}).status_code == 200


def test_search_contract(client) -> None:  # type: ignore[no-untyped-def]
    """k and offset echoed, the next page's link, why there is or is not an answer, the answer
    step and the retrieval mode chosen over HTTP."""
    q = "qui a critiqué Salesforce ?"
    body = client.get("/search", params={"q": q, "k": 2}).json()
    assert (body["k"], body["offset"], body["answer_status"]) == (2, 0, "answered")
    assert body["next"] and client.get(body["next"]).json()["offset"] == 2
    assert client.get("/search", params={"q": q, "k": 2, "offset": body["total"]["value"] - 1}).json()["next"] is None
    skipped = client.get("/search", params={"q": q, "answer": "false"}).json()
    assert skipped["answer"] is None and skipped["answer_status"] == "skipped"
    assert skipped["results"][0]["doc_id"] == body["results"][0]["doc_id"]
    assert client.get("/search", params={"q": "Dreamforce Salesforce"}).json()["answer_status"] == "not_a_question"
    declined = client.get("/search", params={"q": "quelle est la recette de la tarte tatin ?"}).json()
    assert declined["answer"] is None and declined["answer_status"] == "declined"
    lexical = client.get("/search", params={"q": "activistes", "mode": "lexical"}).json()
    assert ACTIVISTS in lexical["results"][0]["passage"]
    bad = client.get("/search", params={"q": q, "mode": "fuzzy"})
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["param"] == "mode"


def test_headers_the_statuses_require(client) -> None:  # type: ignore[no-untyped-def]
    """405 with Allow, 401 with WWW-Authenticate, Vary: Accept where the URL answers HTML or JSON,
    a request id echoed when given and made when not; /version."""
    r = client.delete("/search", params={"q": "salon"})
    assert r.status_code == 405 and "GET" in r.headers["allow"]
    rid = client.get("/search", params={"q": "salon"}, headers={"X-Request-Id": "trace-42"}).headers["x-request-id"]
    assert rid == "trace-42"
    made = client.get("/search", params={"q": "salon"}, headers={"X-Request-Id": "bad id\n"}).headers["x-request-id"]
    assert made != "bad id\n" and len(made) == 32
    doc = client.get("/search", params={"q": "Dreamforce"}).json()["results"][0]["doc_id"]
    assert client.get(f"/articles/{doc}").headers["vary"] == "Accept"
    # the page also answers in the reader's language (Accept-Language, or the switch's cookie)
    html_vary = client.get(f"/articles/{doc}", headers={"accept": "text/html"}).headers["vary"]
    assert html_vary.split(", ") == ["Accept", "Accept-Language", "Cookie"]
    v = client.get("/version").json()
    assert v["version"] and v["generation"].startswith("gen-") and v["model"]


def test_unknown_article_json_and_html(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/articles/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "article_not_found"
    h = client.get("/articles/nope", headers={"accept": "text/html"})
    assert h.status_code == 404 and "<html" in h.text and "nope" in h.text
    assert client.get("/no/such/page").json()["error"]["code"] == "not_found"


def test_html_page_escapes_and_headers(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/", params={"q": '<script>alert(1)</script> "><img src=x onerror=alert(5)> salon piégé'})
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<img src=x" not in r.text
    assert "&lt;script&gt;" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"]
    bad = client.get("/", params={"q": "  "})
    assert bad.status_code == 422 and "vide" in bad.text


def test_health_openapi_and_limits(client) -> None:  # type: ignore[no-untyped-def]
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["generation"].startswith("gen-") and h["counts"]["articles"] == 3
    spec = client.get("/openapi.json").json()
    ok = spec["paths"]["/search"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["example"]["answer"]["span_text"] == "des activistes"
    assert ok["schema"]["$ref"].endswith("/SearchResponse")
    fields = spec["components"]["schemas"]["Highlight"]["properties"]
    assert "passage" in fields["start"]["description"]
    assert "/search" in spec["paths"] and "/articles/{doc_id}" in spec["paths"]
    assert {op["tags"][0] for path in spec["paths"].values() for op in path.values()} == {
        "search",
        "service",
        "admin",
        "writes",
    }
    big = client.post("/admin/reload", content=b"x" * 20000)
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert client.post("/admin/reload").status_code == 403


def test_missing_index_is_503(settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from web.app import State, create_app

    s = settings.model_copy(update={"index_dir": tmp_path / "none"})
    where = str(tmp_path / "none")
    app = create_app(s, State(s, None, None, f"{where} has no manifest.json: not a Salon index"))
    with TestClient(app) as c:
        r = c.get("/search", params={"q": "salon"})
        assert r.status_code == 503 and "salon index" in r.json()["error"]["message"]
        health = c.get("/health")
        assert health.status_code == 503 and "none has no manifest.json" in health.json()["detail"]
        page = c.get("/", params={"q": "salon"})
        assert page.status_code == 503
        # what a client or a browser sees names the file at fault, never where the server keeps it
        for text in (r.text, health.text, page.text):
            assert str(tmp_path) not in text


def test_admin_reload_swaps_generation_and_refuses_a_damaged_one(settings, embedder, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from indexer import layout
    from indexer.build import build_index
    from indexer.settings import Settings
    from search.engine import Engine
    from web.app import State, create_app

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.md").write_text("---\ntitle: Foire\n---\nLa foire de Lyon a ouvert.", encoding="utf-8")
    monkeypatch.setenv("SALON_ADMIN_TOKEN", "sekret")
    s = Settings(index_dir=tmp_path / "i")  # the token from the environment, as `salon serve` reads it
    assert s.admin_token is not None and "sekret" not in repr(s)
    first = build_index(corpus, s.index_dir, embedder, s, progress=False)
    app = create_app(s, State(s, embedder, Engine.open(s.index_dir, s, embedder), None))
    with TestClient(app) as c:
        assert c.get("/health").json()["generation"] == first.generation.name
        wrong = c.post("/admin/reload", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/admin/reload", headers={"Authorization": "sekret"}).status_code == 401  # no scheme
        assert c.post("/admin/reload").json()["error"]["code"] == "unauthorized"
        (corpus / "b.md").write_text("---\ntitle: Nautique\n---\nLe salon nautique ouvre.", encoding="utf-8")
        second = build_index(corpus, s.index_dir, embedder, s, progress=False)
        r = c.post("/admin/reload", headers={"Authorization": "Bearer sekret"})
        assert r.status_code == 200 and r.json()["generation"] == second.generation.name
        assert c.get("/health").json()["generation"] == second.generation.name
        assert c.get("/search", params={"q": "salon nautique"}).json()["results"][0]["doc_id"] == "b"
        third = build_index(corpus, s.index_dir, embedder, s, progress=False)
        (third.generation / layout.STORE).write_bytes(b"garbage")
        bad = c.post("/admin/reload", headers={"Authorization": "Bearer sekret"})
        assert bad.status_code == 409 and bad.json()["error"]["code"] == "reload_failed"
        assert second.generation.name in bad.json()["error"]["message"]
        assert c.get("/health").json()["generation"] == second.generation.name
        assert c.get("/search", params={"q": "foire de Lyon"}).status_code == 200


def test_cors_off_by_default_and_only_for_configured_origins(client, settings, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from indexer.settings import Settings
    from web.app import State, create_app

    origin = {"Origin": "https://ailleurs.example"}
    r = client.get("/search", params={"q": "salon"}, headers=origin)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = client.options("/search", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers

    monkeypatch.setenv("SALON_CORS_ORIGINS", '["https://intranet.example"]')
    s = Settings(index_dir=settings.index_dir)
    assert s.cors_origins == ("https://intranet.example",)
    with TestClient(create_app(s, State(s, engine.runtime, engine, None))) as c:
        ok = c.get("/search", params={"q": "salon"}, headers={"Origin": "https://intranet.example"})
        assert ok.headers["access-control-allow-origin"] == "https://intranet.example"
        other = c.get("/search", params={"q": "salon"}, headers=origin)
        assert "access-control-allow-origin" not in other.headers
        pre = c.options(
            "/search",
            headers={"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"},
        )
        assert pre.status_code == 400  # only GET is allowed cross-origin


def test_the_request_id_is_in_the_log(client, caplog) -> None:  # type: ignore[no-untyped-def]
    """The id a client reads in X-Request-Id or an error body finds its request in the access log."""
    import logging

    with caplog.at_level(logging.INFO, logger="salon.access"):
        r = client.get("/search", params={"q": ""}, headers={"X-Request-Id": "trace-77"})
    assert r.json()["error"]["request_id"] == "trace-77"
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "salon.access"]
    assert any(line.startswith("trace-77 GET /search 422 ") for line in lines), lines

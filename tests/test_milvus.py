"""The served index in Milvus (embedded milvus-lite): same rankings as the local store.

Assertions are on ranks and ids, not raw scores (lite's own BM25 is not used: Salon's weights are).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from indexer.settings import Settings
from search.types import Filters
from tests.conftest import SHARED

pytest.importorskip("pymilvus", reason="the Milvus store needs the extra: pip install '.[scale]'")
pytestmark = pytest.mark.model

PIAF = SHARED / "eval" / "piaf-dev"
QUERIES = (
    "qui a critiqué Salesforce ?",
    "foire de Lyon",
    "digital native",
    "combien d'exposants ?",
    "où se tenait Dreamforce ?",
)
FILTERS = (None, Filters(date_from="2019"), Filters(date_to="2015"), Filters(event="Dreamforce 2019"))


def _listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on (from /proc, no tools needed)."""
    import os

    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="utf-8") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    out.append(cols[1].split(":")[0])
    return out


def _is_loopback(hexaddr: str) -> bool:
    if len(hexaddr) == 8:  # IPv4, little-endian: 0100007F = 127.0.0.1
        return hexaddr.endswith("7F")
    # IPv6 ::1, or ::ffff:127.x.x.x
    return hexaddr == "00000000000000000000000001000000" or (
        hexaddr[:24] == "0000000000000000FFFF0000" and hexaddr.endswith("7F")
    )


@pytest.fixture(scope="module")
def milvus_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return settings.model_copy(
        update={"store": "milvus", "milvus_uri": str(tmp_path_factory.mktemp("milvus") / "salon.db")}
    )


@pytest.fixture(scope="module")
def milvus_engine(engine, milvus_settings: Settings):  # type: ignore[no-untyped-def]
    from indexer.milvus import publish
    from search.engine import Engine

    publish(engine.generation, milvus_settings)
    eng = Engine.open(milvus_settings.index_dir, milvus_settings, engine.runtime)
    eng.answers.warm()
    return eng


def _ranking(res) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(r.doc_id, r.start, r.end) for r in res.results]


def test_seed_question_through_milvus(milvus_engine, engine) -> None:  # type: ignore[no-untyped-def]
    res = milvus_engine.search("qui a critiqué Salesforce ?", k=5)
    assert res.answer is not None and res.answer.doc_id == "dreamforce-2019"
    assert res.answer.span_text == "des activistes"
    local = engine.search("qui a critiqué Salesforce ?", k=5)
    assert _ranking(res) == _ranking(local)
    assert (res.answer.start, res.answer.end) == (local.answer.start, local.answer.end)
    assert milvus_engine.describe()["store"] == "milvus"
    assert milvus_engine.describe()["generation"].startswith("g")


def test_same_rankings_and_filters_as_local(milvus_engine, engine) -> None:  # type: ignore[no-untyped-def]
    for q in QUERIES:
        for f in FILTERS:
            for mode in ("hybrid", "dense", "lexical"):
                a, b = engine.search(q, k=10, filters=f, mode=mode), milvus_engine.search(q, k=10, filters=f, mode=mode)
                assert _ranking(a) == _ranking(b), (q, f, mode)
                assert [h.start for r in a.results for h in r.highlights] == [
                    h.start for r in b.results for h in r.highlights
                ]
    dated = milvus_engine.search("salon", k=20, filters=Filters(date_from="2019"))
    assert dated.results and all(r.date >= "2019" for r in dated.results)
    assert {
        r.doc_id for r in milvus_engine.search("salon", k=20, filters=Filters(event="dreamforce 2019")).results
    } == {"dreamforce-2019"}
    assert milvus_engine.facets() == engine.facets()
    assert milvus_engine.article("dreamforce-2019") == engine.article("dreamforce-2019")


def test_same_facets_and_entity_filters_as_local(milvus_engine, engine) -> None:  # type: ignore[no-untyped-def]
    for q, f in (
        ("qui a critiqué Salesforce ?", None),
        ("salon", Filters(people=("Marc Benioff",))),
        ("salon", Filters(organisations=("salesforce",), date_from="2019")),
        ("salon", Filters(places=("Nulle Part",))),
        ("salon", Filters(people=("Benioff",))),
    ):
        a, b = engine.search(q, k=10, filters=f), milvus_engine.search(q, k=10, filters=f)
        assert _ranking(a) == _ranking(b) and a.facets == b.facets, (q, f)
        assert [r.highlights for r in a.results] == [r.highlights for r in b.results], (q, f)
        if q.startswith("qui"):
            assert "Salesforce" in [v.value for v in b.facets.organisations]
    assert milvus_engine.entities("person", "ben") == engine.entities("person", "ben")
    for kind, value in (("person", "Benioff"), ("other", "Twitter"), ("place", "Nulle Part")):
        assert milvus_engine.entity_page(kind, value) == engine.entity_page(kind, value)
    grouped = [e.search("salon", k=2, group="article") for e in (engine, milvus_engine)]
    local, remote = (
        [(a.doc_id, [p.passage_id for p in a.passages], a.ranked) for a in g.articles or []] for g in grouped
    )
    assert local == remote and grouped[0].total == grouped[1].total  # scores aside: rankings, as above
    assert milvus_engine.entities(None, "", 50) == engine.entities(None, "", 50)


def test_embedded_milvus_listens_on_loopback_only(milvus_engine) -> None:  # type: ignore[no-untyped-def]
    import os

    addrs = _listening_addresses(os.getpid())
    assert addrs, "milvus-lite should serve its in-process server on a TCP port"
    assert all(_is_loopback(a) for a in addrs), addrs


def test_alias_switch_during_concurrent_searches(engine, milvus_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from indexer import milvus as mv
    from search.engine import Engine

    s = milvus_settings.model_copy(update={"milvus_uri": str(tmp_path / "alias.db"), "keep_generations": 2})
    first = mv.publish(engine.generation, s)
    eng = Engine.open(s.index_dir, s, engine.runtime)
    expected = _ranking(eng.search(QUERIES[0], k=5))
    errors: list[BaseException] = []
    served: set[str] = set()
    done = threading.Event()
    counts = [0, 0, 0]

    def client(i: int) -> None:
        deadline = time.monotonic() + 60  # bounded in time and in count
        while not done.is_set() and time.monotonic() < deadline and counts[i] < 2000:
            try:
                res = eng.search(QUERIES[0], k=5)
                assert _ranking(res) == expected
                served.add(eng.describe()["generation"])
            except BaseException as exc:
                errors.append(exc)
                return
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        second = mv.publish(engine.generation, s)
        time.sleep(1.5)  # past the alias cache: the searchers move to the second generation
        third = mv.publish(engine.generation, s)
        time.sleep(1.5)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert sum(counts) > 20
    assert third.dropped == [first.generation]
    assert mv.generations(eng.store.client, s.milvus_prefix) == [second.generation, third.generation]
    assert mv.served_generation(eng.store.client, s.milvus_prefix) == third.generation
    assert {second.generation, third.generation} & served


def test_upsert_and_delete_by_article(engine, embedder, milvus_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from indexer import milvus as mv
    from indexer.corpus import Article
    from search.engine import Engine

    s = milvus_settings.model_copy(update={"milvus_uri": str(tmp_path / "upd.db")})
    mv.publish(engine.generation, s)
    eng = Engine.open(s.index_dir, s, engine.runtime)
    served = mv.ServedGeneration(s)

    assert served.delete(["dreamforce-2019"]) == 1
    eng.store.refresh()
    assert "dreamforce-2019" not in {r.doc_id for r in eng.search("Salesforce Dreamforce", k=10).results}
    with pytest.raises(Exception, match="no article"):
        eng.article("dreamforce-2019")

    new = Article(
        id="vivatech-2023",
        title="VivaTech 2023 : les robots pâtissiers à l'honneur",
        text="Le salon VivaTech 2023 s'est tenu à Paris, porte de Versailles.\n\n"
        "Un robot pâtissier conçu à Lille a préparé trois mille macarons devant les visiteurs.",
        date="2023-06",
        event="VivaTech 2023",
        source="test",
    )
    served.upsert_articles([new], embedder, s)
    eng.store.refresh()
    res = eng.search("robot pâtissier macarons", k=3)
    assert res.results[0].doc_id == "vivatech-2023"
    assert eng.search("macarons", k=5, filters=Filters(event="VivaTech 2023")).results[0].doc_id == "vivatech-2023"
    old = eng.search("macarons", k=5, filters=Filters(date_to="2020")).results
    assert all(r.doc_id != "vivatech-2023" for r in old)
    # the article's entities came with it: filters and facets see them
    by_place = eng.search("macarons", k=5, filters=Filters(places=("Lille",))).results
    assert [r.doc_id for r in by_place] == ["vivatech-2023"]
    ans = eng.search("combien de macarons le robot a-t-il préparés ?", k=3).answers
    assert ans and ans[0].doc_id == "vivatech-2023" and "macarons" in ans[0].text

    changed = Article(**{**new.__dict__, "text": "Le salon VivaTech 2023 a accueilli un chien robot nommé Pixel."})
    served.upsert_articles([changed], embedder, s)
    eng.store.refresh()
    assert eng.article("vivatech-2023").text == changed.text
    assert "vivatech-2023" not in {r.doc_id for r in eng.search("macarons", k=10, mode="lexical").results}
    assert eng.search("chien robot Pixel", k=1).results[0].doc_id == "vivatech-2023"
    counts = eng.counts
    assert counts["articles"] == engine.counts["articles"]  # one deleted, one added


@pytest.mark.skipif(not PIAF.is_dir(), reason="needs ../shared/eval/piaf-dev")
def test_eval_milvus_within_001_of_local(embedder, settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`salon eval --store milvus` against the local store, on one build (the full set is a bench figure)."""
    from indexer.build import build_index
    from indexer.corpus import CorpusReport
    from indexer.milvus import publish
    from search.engine import Engine
    from search.evaluate import _run_mode, load_dataset

    # 300 questions over 400 passages (their gold ones + random ones)
    ds = load_dataset(PIAF, max_docs=400, limit=300)
    res = build_index(CorpusReport(ds.articles), tmp_path / "idx", embedder, settings, progress=False)
    ms = settings.model_copy(update={"store": "milvus", "milvus_uri": str(tmp_path / "eval.db")})
    publish(res.generation, ms)
    local = Engine.open(tmp_path / "idx", settings, embedder)
    milvus = Engine.open(tmp_path / "idx", ms, embedder)
    assert len(ds.questions) == 300
    a, b = _run_mode(local, ds, "hybrid", False), _run_mode(milvus, ds, "hybrid", False)
    assert abs(a["R@1"] - b["R@1"]) <= 0.01, (a, b)
    assert abs(a["MRR@10"] - b["MRR@10"]) <= 0.01
    assert b["R@1"] > 0.5  # a meaningful level, not two equal zeros


def test_facets_of_many_events_are_stored_whole(engine, milvus_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An archive of thousands of events lists them all in the generation's meta, longer than one
    VARCHAR field (65,535): stored in pieces in real milvus-lite and read back whole; a piece
    missing is an error, not a shorter list."""
    from indexer import layout
    from indexer import milvus as mv

    s = milvus_settings.model_copy(update={"milvus_uri": str(tmp_path / "facets.db")})
    client = mv.connect(s)
    schema, index_params = mv._schemas(engine.manifest.dim)["meta"]
    client.create_collection("salon_t_meta", schema=schema, index_params=index_params)
    facets = sorted(f"Salon professionnel de l'été n°{i} — Genève & Zürich" for i in range(5000))
    stats = mv.Stats(10, 10, 40, 3, 120, 17.5)
    mv._write_meta(client, "salon_t_meta", engine.manifest, stats, facets)
    assert len(json.dumps(facets, ensure_ascii=False).encode()) > 3 * mv.VARCHAR
    assert mv.read_meta(client, "salon_t_meta", "t") == (engine.manifest, stats, facets)
    client.delete("salon_t_meta", filter='key == "facets#2"')
    with pytest.raises(layout.IndexCorrupt, match="facets is missing some of its"):
        mv.read_meta(client, "salon_t_meta", "t")

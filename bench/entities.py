"""Entities (issue 33): what they cost a build, what they take on disk, how often they hold the answer.

    .venv/bin/python bench/entities.py ../shared/eval/piaf-dev --json docs/bench/entities-piaf.json
    .venv/bin/python bench/entities.py ../shared/eval/orangesum --headlines --json docs/bench/entities-orangesum.json
    .venv/bin/python bench/entities.py ../shared/eval/orangesum --repeat 1 --json OUT  # builds, 2,400 articles

One run, side by side: PIAF dev built with the embedding cache off, entities off then on (twice,
alternating, so a machine busy with something else slows both alike); the store's size per
passage with and without them; then, over the build with entities, the PIAF questions whose gold
answer is a person, an organisation or a place (the question asks « qui », « où », « quelle
entreprise », « quelle ville »…, and the answer is written as a name: capitalised, at most six
words): how often the gold answer is among its passage's extracted entities (``make bench-entities``).

With ``--headlines`` (OrangeSum): the person names of each headline (a run of capitalised words,
at least a first name and a surname, whose first and last words the articles write capitalised
more often than not, so « Affaire Traoré » gives nothing and « Marine Le Pen » is kept; the
cars, places and brands among them, read by hand, set aside: ``NOT_PEOPLE``) and how
often each is among its article's extracted entities, as a person or of any kind; NER only, no
build. The subset is ``load_dataset``'s: every headline's article plus random ones up to
``--max-docs``; only the headlines' articles are read.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from indexer import layout
from indexer.build import build_index
from indexer.corpus import CorpusReport
from indexer.entities import key_of, model_id
from indexer.model import Embedder
from indexer.settings import Settings
from search.answer import expected_entities
from search.evaluate import load_dataset, table, write_json

# « le Brésil », « la France », « l'Élysée »: the gold answer's determiner is not part of the name
_DETERMINER = re.compile(r"^(?:le|la|les|l['’]|du|des|de|d['’]|au|aux|à|en)\s*", re.I)


def asked_kind(question: str, answer: str) -> str | None:
    """person, organisation or place when the question asks for one and the answer is a name."""
    labels = expected_entities(question)
    name = _DETERMINER.sub("", answer.strip())
    if labels is None or not name[:1].isupper() or len(name.split()) > 6:
        return None
    if labels == {"LOC"}:
        return "place"
    return "organisation" if labels == {"ORG"} else "person"  # « qui »: a person or a group


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--repeat", type=int, default=2, help="builds of each kind, alternating")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--headlines", action="store_true", help="OrangeSum: person names of the headlines")
    ap.add_argument(
        "--max-docs", type=int, default=2400, help="OrangeSum: the subset's size (built, or read for --headlines)"
    )
    args = ap.parse_args()
    if args.headlines:
        write_json(args.json, headline_people(args.dataset, args.max_docs))
        return
    ds = load_dataset(args.dataset, max_docs=args.max_docs)
    base = Settings()
    embedder = Embedder.from_settings(base, use_cache=False)
    times: dict[bool, list[float]] = {False: [], True: []}
    ner_s: list[float] = []
    sizes: dict[bool, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kept: Path | None = None
        for i in range(args.repeat):
            for on in (False, True):
                s = base.model_copy(update={"entities": on})
                t0 = time.perf_counter()
                res = build_index(CorpusReport(ds.articles), Path(tmp) / f"{on}-{i}", embedder, s, progress=False)
                times[on].append(time.perf_counter() - t0)
                sizes[on] = (res.generation / layout.STORE).stat().st_size
                if on:
                    kept = res.generation
                    ner_s.append(_ner_seconds(ds.articles))
        assert kept is not None
        db = sqlite3.connect(str(kept / layout.STORE))
        rows = db.execute(
            "SELECT a.id, e.kind, e.key, e.mentions FROM entities e JOIN articles a ON a.row = e.article"
        ).fetchall()
        counts = dict(db.execute("SELECT kind, COUNT(*) FROM entities GROUP BY kind").fetchall())
        texts = dict(db.execute("SELECT id, text FROM articles").fetchall())
        db.close()
    per_doc: dict[str, list[tuple[str, str, list[list[int]]]]] = {}
    for doc, kind, key, mentions in rows:
        per_doc.setdefault(doc, []).append((kind, key, json.loads(mentions)))
    asked: Counter[str] = Counter()
    found: Counter[str] = Counter()
    found_kind: Counter[str] = Counter()
    overlap: Counter[str] = Counter()
    for q in ds.questions:
        if not q.answers:
            continue
        kind = asked_kind(q.text, q.answers[0])
        if kind is None:
            continue
        asked[kind] += 1
        gold = {key_of(_DETERMINER.sub("", a.strip())) for a in q.answers}
        text = texts.get(q.gold_doc, "")
        ents = per_doc.get(q.gold_doc, [])
        # the gold answer is an entity's name, or the text of one of its mentions (« Obama » in
        # an article that names « Barack Obama » too)
        hit_kinds = {k for k, key, ms in ents if key in gold or any(key_of(text[a:b]) in gold for a, b in ms)}
        found[kind] += bool(hit_kinds)
        found_kind[kind] += kind in hit_kinds or (kind == "person" and "organisation" in hit_kinds)
        spans = [(st, st + len(a)) for a, st in zip(q.answers, q.starts, strict=False) if st >= 0]
        overlap[kind] += any(a < e and s < b for _, _, ms in ents for a, b in ms for s, e in spans)
    n_passages = len(ds.articles)
    off, on = min(times[False]), min(times[True])
    report = {
        "dataset": ds.name,
        "passages": n_passages,
        "ner": model_id(),
        "build_s_entities_off": [round(t, 1) for t in times[False]],
        "build_s_entities_on": [round(t, 1) for t in times[True]],
        "build_ratio_best": round(on / off, 3),
        "ner_alone_s": round(min(ner_s), 1),
        "store_bytes_per_passage_off": round(sizes[False] / n_passages),
        "store_bytes_per_passage_on": round(sizes[True] / n_passages),
        "entity_bytes_per_passage": round((sizes[True] - sizes[False]) / n_passages),
        "entities_per_passage": {k: round(v / n_passages, 2) for k, v in sorted(counts.items())},
        "gold_answer_among_entities": {
            k: {
                "questions": asked[k],
                "any_kind": round(found[k] / asked[k], 3),
                "asked_kind": round(found_kind[k] / asked[k], 3),
                "a_mention_overlaps": round(overlap[k] / asked[k], 3),
            }
            for k in ("person", "organisation", "place")
            if asked[k]
        },
    }
    print(f"\n{ds.name}: {n_passages} passages, cache off; {report['ner']}")
    builds = [["off", report["build_s_entities_off"]], ["on", report["build_s_entities_on"]]]
    print(table(["entities", "builds s"], builds))
    print(f"best on / best off: {report['build_ratio_best']}; NER alone {report['ner_alone_s']} s")
    print(f"store per passage: {report['entity_bytes_per_passage']} bytes of entities")
    g = report["gold_answer_among_entities"]
    print(
        table(
            ["asked", "questions", "among entities", "of the asked kind", "a mention overlaps"],
            [[k, v["questions"], v["any_kind"], v["asked_kind"], v["a_mention_overlaps"]] for k, v in g.items()],
        )
    )
    write_json(args.json, report)


_NAME_WORD = r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:-[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+)*"
# « Charles de Gaulle », « Marine Le Pen », « Xavier Dupont de Ligonnès »
_NAME_RUN = re.compile(rf"{_NAME_WORD}(?:\s+(?:(?:de|du|des|von|van|der|di|da|del|le|la)\s+)?{_NAME_WORD})+")


# What names_in finds in the 1,498 headlines that is not a person, read by hand: cars, places,
# brands, titles, fictional characters, and runs that join two names or a name to a place.
NOT_PEOPLE = frozenset(
    """Al Qaïda|Alfa Romeo|Alpes de Haute-Provence|Ares Design Project|Aston Martin|Aston Martin Vantage|
    Baby Bugatti|Bella Ciao|Bentley Continental|Bilbo le Hobbit|Buenos Aires|Bugatti Chiron Pur|
    Cabriolet Regatta Edition|Candy Crush|Charlie Hebdo|Checkpoint Charlie|Chevaliers du Fiel|
    Chevrolet Corvette|Chiron Pur|Congrès de Versailles|Disneyland Paris|Driving Academy|Ehpad de Mulhouse|
    Ehpad de Paris|Emmy Awards|Ferris Bueller|Ford Mustang|France Télévisions|François Mitterrand Michel Charasse|
    General Electric|Irlande du Nord|John Cooper Works|Laguna Seca|Land Rover|Las Vegas|Litchfield Motors|
    London Olympia|Los Angeles|Lotus Evija|Louis Vuitton|Lucky Luke|Mac Donald|Malaysia Airlines|Maserati Indy|
    Mecum Auctions|Miss France|Miss Grande-Bretagne|Monterey Car Week|Morgan Plus Four|Mulliner Cabriolet|
    New York|New York Times|Notre-Dame de Paris|Philharmonie de Paris|Porsche Gemballa Mirage|Qatar Airways|
    Quattroporte Trofeo|Range Rover Fifty Limited Edition|Revenant Automotive|Sao Paulo|Sri Lanka|St Tropez|
    Taj Mahal|Tate Modern|The Voice|Twitter de Stéphane Bern|Téhéran Ghalibaf|Volkswagen Touareg|
    Waldorf Astoria|Zagato Iso|Élégance de Kyoto""".replace("\n", "")
    .replace("    ", "")
    .split("|")
)


def names_in(headline: str, words: Counter[str]) -> list[str]:
    """The person-like names of a headline: runs of capitalised words trimmed of the words that
    ``words`` (counts over the articles) shows more often lower-cased (« Affaire », « En »)."""
    out = []
    for m in _NAME_RUN.finditer(headline):
        ws = m.group().split()
        while ws and words[ws[0].lower()] >= words[ws[0]]:
            ws.pop(0)
        while ws and words[ws[-1].lower()] >= words[ws[-1]]:
            ws.pop()
        if len(ws) >= 2 and ws[0][:1].isupper() and " ".join(ws) not in NOT_PEOPLE:
            out.append(" ".join(ws))
    return out


def headline_people(folder: Path, max_docs: int) -> dict[str, Any]:
    from indexer.chunking import split_sentences
    from indexer.entities import find_mentions, merge

    ds = load_dataset(folder, max_docs=max_docs)
    words = Counter(w for a in ds.articles for w in re.findall(r"[\w-]+", a.text))
    by_id = {a.id: a for a in ds.articles}
    wanted = [(q, names) for q in ds.questions if (names := names_in(q.text, words))]
    arts = [by_id[q.gold_doc] for q, _ in wanted]
    t0 = time.perf_counter()
    found = find_mentions([a.text for a in arts], [split_sentences(a.text) for a in arts])
    ents = [merge(a.text, ms, a.place, a.event) for a, ms in zip(arts, found, strict=True)]
    seconds = time.perf_counter() - t0
    n_names = as_person = any_kind = heads_all = 0
    missed: Counter[str] = Counter()
    for (_, names), a, es in zip(wanted, arts, ents, strict=True):
        kinds: dict[str, set[str]] = {}
        for e in es:  # an entity's name, or one of its mentions (« Macron » where the article says « Emmanuel Macron »)
            for k in {e.key} | {key_of(a.text[s:t]) for s, t in e.mentions}:
                kinds.setdefault(k, set()).add(e.kind)
        got = [kinds.get(key_of(n), set()) for n in names]
        n_names += len(names)
        as_person += sum("person" in g for g in got)
        any_kind += sum(bool(g) for g in got)
        heads_all += all("person" in g for g in got)
        missed.update(n for n, g in zip(names, got, strict=True) if "person" not in g)
    report = {
        "dataset": ds.name,
        "subset": ds.note,
        "headlines": len(ds.questions),
        "headlines_with_names": len(wanted),
        "names": n_names,
        "ner": model_id(),
        "ner_s": round(seconds, 1),
        "names_extracted_as_person": round(as_person / n_names, 3),
        "names_extracted_any_kind": round(any_kind / n_names, 3),
        "headlines_all_names_as_person": round(heads_all / len(wanted), 3),
        "most_missed_as_person": missed.most_common(30),
    }
    print(f"\n{ds.name}: {ds.note}; {len(wanted)} of {len(ds.questions)} headlines name {n_names} people")
    cols = ("names_extracted_as_person", "names_extracted_any_kind", "headlines_all_names_as_person")
    header = ["names extracted as a person", "of any kind", "headlines with all their names as people"]
    print(table(header, [[report[k] for k in cols]]))
    return report


def _ner_seconds(articles: list) -> float:  # type: ignore[type-arg]
    """NER's own time on these articles (sentences split beforehand, not counted)."""
    from indexer.chunking import split_sentences
    from indexer.entities import find_mentions, merge

    texts = [a.text for a in articles]
    sents = [split_sentences(t) for t in texts]
    t0 = time.perf_counter()
    for a, ms in zip(articles, find_mentions(texts, sents), strict=True):
        merge(a.text, ms, a.place, a.event)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()

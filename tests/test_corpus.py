from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from indexer.corpus import CorpusError, normalise_date, read_corpus
from tests.conftest import CORPUS, SHARED


def test_shipped_corpus_is_the_seeds_verbatim() -> None:
    report = read_corpus(CORPUS)
    assert report.problems == []
    by_id = {a.id: a for a in report.articles}
    assert set(by_id) == {"dreamforce-2019", "salon-e-marketing-2012"}
    seed0 = (SHARED / "seeds" / "000_eabc198995d661cd.txt").read_text(encoding="utf-8")
    seed4 = (SHARED / "seeds" / "004_d81ddb016f3fb71e.txt").read_text(encoding="utf-8")
    assert " date 2019-11 " + by_id["dreamforce-2019"].text == seed0
    assert by_id["salon-e-marketing-2012"].text == seed4
    df = by_id["dreamforce-2019"]
    assert (df.date, df.event, df.language) == ("2019-11", "Dreamforce 2019", "fr")
    assert df.date_range == ("2019-11-01", "2019-11-30")


def write(folder: Path, name: str, data: str | bytes) -> None:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        p.write_bytes(data)
    else:
        p.write_text(data, encoding="utf-8")


def test_every_format_and_every_bad_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "---\ntitle: Titre A\ndate: 05/11/2019\nevent: Expo\n---\nCorps de l’article A.\n")
    write(tmp_path, "b.txt", "Titre B\n\nTexte brut B.")
    write(
        tmp_path,
        "c.html",
        "<html lang='fr'><head><title>Page C</title><style>p{}</style>"
        "<script>alert(1)</script><meta name='date' content='2020-02-03'></head>"
        "<body><nav>menu</nav><article><h1>Titre C</h1><p>Premier &amp; paragraphe.</p>"
        "<p>Second<br>ligne.</p></article></body></html>",
    )
    write(
        tmp_path,
        "d.jsonl",
        '{"id": "d1", "title": "D1", "text": "Texte D1", "date": "2021"}\n'
        "not json\n"
        '{"id": "d3", "title": "sans texte"}\n',
    )
    write(tmp_path, "bad.md", "---\ntitle: [unclosed\n---\nx")
    write(tmp_path, "open.md", "---\ntitle: jamais fermé\ntexte")
    write(tmp_path, "date.md", "---\ndate: 2019-02-30\n---\nTexte.")
    write(tmp_path, "empty.txt", "   \n")
    write(tmp_path, "junk.txt", b"\x00\x01\x02binary\x00" * 50)
    write(tmp_path, "legacy.txt", "Café à Paris, été 2012.".encode("cp1252"))
    write(tmp_path, "dup.md", "---\nid: d1\n---\nDoublon.")
    write(tmp_path, ".hidden.md", "caché")
    write(tmp_path, "image.png", b"\x89PNG")
    os.symlink(tmp_path / "a.md", tmp_path / "link.md")
    report = read_corpus(tmp_path)
    ids = {a.id: a for a in report.articles}
    assert set(ids) == {"a", "b", "c", "d1", "legacy"}
    assert ids["a"].date == "2019-11-05" and ids["a"].title == "Titre A"
    assert ids["c"].text == "Titre C\n\nPremier & paragraphe.\n\nSecond\nligne."
    assert ids["c"].title == "Page C" and ids["c"].date == "2020-02-03" and ids["c"].language == "fr"
    assert ids["legacy"].text == "Café à Paris, été 2012."
    reasons = {p.path: p.reason for p in report.problems}
    assert "not json" not in reasons and "d.jsonl:2" in reasons and "d.jsonl:3" in reasons
    assert "YAML" in reasons["bad.md"]
    assert "never closed" in reasons["open.md"]
    assert "date" in reasons["date.md"] or "day" in reasons["date.md"]
    assert reasons["empty.txt"] == "empty file"
    assert "binary" in reasons["junk.txt"]
    assert "cp1252" in reasons["legacy.txt"]
    assert "duplicate" in reasons["dup.md"]
    assert "symbolic link" in reasons["link.md"]
    assert "unsupported" in reasons["image.png"]
    assert ".hidden.md" not in reasons
    skipped = [p for p in report.problems if p.skipped]
    assert not any(p.path == "legacy.txt" for p in skipped)


def test_missing_corpus_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "nope")


@pytest.mark.parametrize(
    ("raw", "iso"),
    [("2019", "2019"), ("2019-11", "2019-11"), ("2019/11/5", "2019-11-05"), ("24.01.2012", "2012-01-24"), ("", "")],
)
def test_dates_in_odd_formats(raw: str, iso: str) -> None:
    assert normalise_date(raw) == iso


def test_bad_dates_rejected() -> None:
    for raw in ("hier", "2019-13", "2019-02-30"):
        with pytest.raises(ValueError):
            normalise_date(raw)


def test_twenty_megabyte_article_is_skipped_with_its_reason(tmp_path: Path) -> None:
    para = "Le salon a réuni des exposants venus de toute l'Europe pour parler de commerce. " * 40
    big = "---\ntitle: Énorme\n---\n" + "\n\n".join([para] * (20_000_000 // (len(para) + 2) + 1))
    write(tmp_path, "huge.md", big)
    write(tmp_path, "ok.md", "---\ntitle: Petit\n---\nUn petit article sur le salon.")
    report = read_corpus(tmp_path)
    assert [a.id for a in report.articles] == ["ok"]
    (problem,) = report.problems
    assert problem.path == "huge.md" and problem.skipped
    assert re.search(r"has 20\.\d MB of text, over the 8 MB limit", problem.reason), problem.reason
    assert "SALON_MAX_ARTICLE_MB" in problem.reason
    # the limit is a setting: raised, the same file is read whole
    assert [a.id for a in read_corpus(tmp_path, max_article_mb=25).articles] == ["huge", "ok"]

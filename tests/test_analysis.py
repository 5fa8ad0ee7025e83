from __future__ import annotations

import pytest

from indexer.analysis import analyze, term_spans


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("critiqué", "critiquant"),
        ("critique", "CRITIQUÉ"),
        ("l'aéroport", "aéroports"),
        ("l’aéroport", "aeroport"),
        ("jusqu’à Paris", "Paris"),
        ("qu'il", "il"),
        ("œuvre", "oeuvre"),
        ("Æther", "aether"),
        ("événements", "evenement"),
    ],
)
def test_same_terms(a: str, b: str) -> None:
    assert analyze(a) == analyze(b)


def test_stop_words_names_numbers() -> None:
    assert analyze("le la les des du de") == []
    assert analyze("Jean-Pierre à Saint-Denis") == analyze("jean pierre saint denis")
    assert analyze("170.000 participants en 2019") == analyze("170000 participant 2019")
    assert "2019" in analyze("le 24 janvier 2019")
    assert analyze("pas plus") != []  # negations and comparisons carry meaning


def test_term_spans_offsets() -> None:
    text = "L’homme critiquant 170.000 gens"
    spans = term_spans(text)
    assert [text[a:b] for a, b, _ in spans] == ["homme", "critiquant", "170.000", "gens"]

from __future__ import annotations

import itertools

from indexer.chunking import chunk_sentences, paragraphs, split_sentences
from indexer.corpus import read_corpus
from tests.conftest import CORPUS


def sents(text: str) -> list[str]:
    spans = split_sentences(text)
    for s in spans:  # offsets always point into the original text
        assert text[s.start : s.end].strip() == text[s.start : s.end]
    return [text[s.start : s.end] for s in spans]


def test_french_hard_cases() -> None:
    assert sents("M. Benioff a parlé. Il est parti à 14 h 30.") == ["M. Benioff a parlé.", "Il est parti à 14 h 30."]
    assert sents(
        "Selon J.-P. Dupont, « c’est fini ! » a-t-il dit. Ensuite, 2.700 sessions ont eu lieu en 3,5 jours."
    ) == [
        "Selon J.-P. Dupont, « c’est fini ! » a-t-il dit.",
        "Ensuite, 2.700 sessions ont eu lieu en 3,5 jours.",
    ]
    assert sents("Voir p. 12 et art. 3 du code. Puis la suite.") == ["Voir p. 12 et art. 3 du code.", "Puis la suite."]
    assert sents("Il l’a dit… Puis il est parti.") == ["Il l’a dit…", "Puis il est parti."]
    assert sents("170.000 participants, 13 millions de spectateurs. Le Dr. Martin et Mme Durand sont là.") == [
        "170.000 participants, 13 millions de spectateurs.",
        "Le Dr. Martin et Mme Durand sont là.",
    ]


def test_sentences_never_cross_paragraphs() -> None:
    text = "Titre sans point\n\nPremière phrase. Deuxième phrase.\n\n  Dernier paragraphe  "
    assert [text[p.start : p.end] for p in paragraphs(text)] == [
        "Titre sans point",
        "Première phrase. Deuxième phrase.",
        "Dernier paragraphe",
    ]
    assert sents(text) == ["Titre sans point", "Première phrase.", "Deuxième phrase.", "Dernier paragraphe"]


def test_chunks_respect_budget_overlap_and_paragraphs() -> None:
    art = next(a for a in read_corpus(CORPUS).articles if a.id == "dreamforce-2019")
    paras = paragraphs(art.text)
    ss = split_sentences(art.text, paras)
    para_of = [next(i for i, p in enumerate(paras) if p.start <= s.start < p.end) for s in ss]

    def count(a: int, b: int) -> int:
        return len(art.text[a:b].split())

    chunks = chunk_sentences(ss, para_of, count, 120, 1)
    assert len(chunks) > 3
    covered = set()
    for prev, c in itertools.pairwise(chunks):
        assert c.first_sentence <= prev.last_sentence + 1  # nothing skipped
        assert c.first_sentence > prev.first_sentence  # always moves on
    for c in chunks:
        assert c.tokens <= 120 or c.first_sentence == c.last_sentence
        assert art.text[c.start : c.end] == art.text[ss[c.first_sentence].start : ss[c.last_sentence].end]
        covered.update(range(c.first_sentence, c.last_sentence + 1))
    assert covered == set(range(len(ss)))
    # overlap: consecutive chunks share their boundary sentence
    assert any(c.first_sentence == p.last_sentence for p, c in itertools.pairwise(chunks))
    # the activists' sentence sits whole inside one chunk
    target = art.text.index("Son show")
    assert any(c.start <= target < c.end for c in chunks)

"""The extractive reader: spans in article offsets, abstention, a damaged artifact, a tiny training run.

The engine fixture runs with default settings, so these tests exercise the shipped artifact as
search serves it (ONNX Runtime, int8), not a test copy.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from indexer.files import sha256_file
from search import reader as R

pytestmark = pytest.mark.model

ACTIVISTS = "des activistes critiquant le récent contrat"


def activists_window(engine: Any) -> R.Window:
    """The window search reads around the seed article's activists sentence."""
    from indexer.chunking import split_sentences

    art = engine.article("dreamforce-2019")
    spans = [(x.start, x.end) for x in split_sentences(art.text)]
    j = next(i for i, (a, b) in enumerate(spans) if ACTIVISTS in art.text[a:b])
    ws, we = R.window_around(spans, j)
    return R.Window(art.text[ws:we], ws, title=art.title)


def damaged_copy(dest: Path) -> Path:
    """A copy of the shipped reader artifact at ``dest`` with one byte of its weights flipped."""
    shutil.copytree(R.ARTIFACT_DIR, dest)
    data = bytearray((dest / R.WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (dest / R.WEIGHTS).write_bytes(bytes(data))
    return dest


def reads_of(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[list[R.Window]]:
    """The windows of each reader call the engine makes from now on (until the test ends)."""
    reader = engine.answers.reader
    read = reader.read
    calls: list[list[R.Window]] = []

    def spy(question: str, windows: list[R.Window]) -> list[R.ReadSpan]:
        calls.append(windows)
        return read(question, windows)

    monkeypatch.setattr(reader, "read", spy)
    return calls


def test_the_reader_is_on_by_default(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.answers.reader is not None, engine.answers.reader_error
    assert engine.answers.reader.runtime == "onnx-int8"


def test_salesforce_span_inside_its_sentence(engine) -> None:  # type: ignore[no-untyped-def]
    res = engine.search("qui a critiqué Salesforce ?", k=5)
    a = res.answer
    assert a is not None and a.span is not None
    assert a.span_text == "des activistes"
    art = engine.article(a.doc_id)
    assert art.text[a.span[0] : a.span[1]] == a.span_text
    assert art.text[a.start : a.end] == a.text
    assert a.start <= a.span[0] < a.span[1] <= a.end and ACTIVISTS in a.text


def test_a_second_window_is_read_only_from_another_article(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Both best sentences for the seed question are in the Dreamforce article: one window is read
    (one answer is shown per article), two with ``reader_same_article``, the answer the same."""
    calls = reads_of(engine, monkeypatch)
    spans = []
    for same in (False, True):
        monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"reader_same_article": same}))
        spans.append(engine.search("qui a critiqué Salesforce ?", k=5).answer.span_text)
    assert [len(c) for c in calls] == [1, 2] and spans == ["des activistes", "des activistes"]
    art = engine.article("dreamforce-2019").text
    assert all(art[w.offset : w.offset + len(w.text)] == w.text for w in calls[1])  # both from that article


def test_the_gate_skips_windows_that_could_not_answer_and_changes_no_answer(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A window whose reading could not pass the threshold even at the gate's margin bound (the
    largest calib margin less 0.9) is not read: the off-corpus question reads nothing, the seed question still reads its
    window, and every answer shown is the ungated one."""
    cal = engine.answers.reader.calibration
    assert R.margin_bound(cal) == pytest.approx(cal["margin_max"] + R.MARGIN_OFFSET)
    calls = reads_of(engine, monkeypatch)
    questions = (
        "qui a critiqué Salesforce ?",
        "quelle est la recette de la tarte tatin ?",
        "combien d'exposants au salon du e-marketing ?",
        "où a eu lieu le salon ?",
    )
    shown: dict[bool, list[list[tuple[str, int, int]]]] = {}
    windows: dict[bool, list[set[tuple[int, str]]]] = {}
    for gate in (False, True):
        monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"reader_gate": gate}))
        calls.clear()
        shown[gate] = [[(a.doc_id, *a.span) for a in engine.search(q, k=5).answers] for q in questions]
        windows[gate] = [{(w.offset, w.text) for w in c} for c in calls]
    assert shown[True] == shown[False] and shown[True][0] and not shown[True][1]
    # the gate only ever leaves windows out: never one that reading them all would not read
    assert all(g <= u for g, u in zip(windows[True], windows[False], strict=True))
    n = [len(w) for w in windows[True]]
    assert n[0] >= 1 and n[1] == 0 and sum(n) < sum(len(w) for w in windows[False])


def test_a_whole_article_is_read_in_the_windows_search_reads(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``read_passage`` (the gold-passage figure) reads one window centred on each sentence, each
    distinct window once, after the article's title, and gives a span at its offsets in the article.

    (Not the seed answer: over all of the article's windows, the highest margin is the round-10
    reader's « Marc Benioff », from a later sentence on Salesforce's stance « sous l'impulsion de son
    maître à penser, Marc Benioff », while search, which reads the windows of the sentences it ranks
    best, answers « des activistes » (tested above); model card, known limits.)"""
    from indexer.chunking import split_sentences

    art = engine.article("dreamforce-2019")
    spans = [(x.start, x.end) for x in split_sentences(art.text)]
    calls = reads_of(engine, monkeypatch)
    best = engine.answers.reader.read_passage("qui a critiqué Salesforce ?", art.text, spans, art.title)
    assert best.text and art.text[best.start : best.end] == best.text
    (windows,) = calls
    centred = {R.window_around(spans, c) for c in range(len(spans))}
    assert {(w.offset, w.offset + len(w.text)) for w in windows} == centred and len(windows) == len(centred)
    assert all(w.title == art.title and art.text[w.offset : w.offset + len(w.text)] == w.text for w in windows)


def test_english_question_the_reader_reads_the_french_span(engine) -> None:  # type: ignore[no-untyped-def]
    """Cross-lingual reading: asked in English over the French sentence, the reader marks the span."""
    art = engine.article("dreamforce-2019")
    (sp,) = engine.answers.reader.read("Who criticized Salesforce?", [activists_window(engine)])
    assert sp.text == "des activistes" and art.text[sp.start : sp.end] == sp.text and sp.score > 5


def test_int8_and_fp32_read_the_same_seed_span(engine, embedder) -> None:  # type: ignore[no-untyped-def]
    """int8 (feed-forward outputs and the head kept in fp32) marks the span fp32 marks, with a
    close margin: the faster path is not a different model."""
    emb = embedder
    args = (emb.model[0].auto_model.state_dict(), emb.model.tokenizer, emb.info.model_id)
    read = {}
    for int8 in (False, True):
        reader = R.Reader.load(*args, onnx_dir=engine.runtime.folder, int8=int8)
        assert reader.runtime == ("onnx-int8" if int8 else "onnx")
        (read[int8],) = reader.read("qui a critiqué Salesforce ?", [activists_window(engine)])
    assert read[True].text == read[False].text == "des activistes"
    assert (read[True].start, read[True].end) == (read[False].start, read[False].end)
    assert abs(read[True].score - read[False].score) < 0.1 * abs(read[False].score) + 0.5


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("Where did Dreamforce take place?", "San Francisco"),
        ("When did the e-marketing show take place?", "janvier 2012"),
        ("¿Quién criticó a Salesforce?", "activistes"),
        ("¿Dónde tuvo lugar Dreamforce?", "San Francisco"),
        ("Wer hat Salesforce kritisiert?", "activistes"),
        ("Chi ha criticato Salesforce?", "activistes"),
        ("Quem criticou a Salesforce?", "activistes"),
    ],
)
def test_english_questions_get_french_spans(engine, question: str, answer: str) -> None:  # type: ignore[no-untyped-def]
    """The confidence knows a question in English cannot share the French article's words: the
    first two got no answer when it was fitted on French questions alone; the Spanish, German,
    Italian and Portuguese ones got none while their language was read as French."""
    a = engine.search(question, k=5).answer
    assert a is not None and a.span_text is not None and answer in a.span_text
    assert engine.article(a.doc_id).text[a.span[0] : a.span[1]] == a.span_text  # type: ignore[index]


def test_english_question_gets_the_french_span(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The issue's cross-lingual question. Its first window (Salesforce's success) holds no
    answer and the activists' window is third by sentence score: the windows of a question in
    another language are read further when none passes the threshold, and a French question's are
    not (the seed question reads one window, as the test above asserts)."""
    calls = reads_of(engine, monkeypatch)
    a = engine.search("Who criticized Salesforce?", k=5).answer
    assert a is not None and a.span_text is not None and "activistes" in a.span_text
    assert engine.article(a.doc_id).text[a.span[0] : a.span[1]] == a.span_text  # type: ignore[index]
    assert len(calls) == 2 and any(ACTIVISTS in w.text for w in calls[1])  # read in the second pass
    calls.clear()
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"reader_foreign_windows": 0}))
    off = engine.search("Who criticized Salesforce?", k=5).answer
    assert len(calls) == 1 and (off is None or "activistes" not in (off.span_text or ""))
    calls.clear()
    monkeypatch.setattr(engine, "settings", engine.settings.model_copy(update={"reader_foreign_windows": 4}))
    engine.search("qui a inventé la tarte tatin ?", k=5)  # French, unanswered: no second pass
    assert len(calls) <= 1


@pytest.mark.parametrize(
    "question",
    [
        "combien d'exposants au salon du e-marketing ?",
        "quelle est la recette de la tarte tatin ?",
        "How many exhibitors were at the e-marketing show?",
        "What is the recipe for tarte tatin?",
        "¿Cuántos expositores había en el salón del e-marketing?",
        "Was ist das Rezept für Tarte Tatin?",
    ],
)
def test_no_answer_in_the_corpus(engine, question: str) -> None:  # type: ignore[no-untyped-def]
    res = engine.search(question, k=5)
    assert res.answer is None
    assert res.results  # abstaining on the answer still returns passages


def test_a_span_that_cannot_answer_its_question_word_is_not_shown(engine) -> None:  # type: ignore[no-untyped-def]
    """The Dreamforce article gives no date in its text (« cette année »); its best reading for
    « quand … ? » was « son entreprise », confident enough to show. A span with no date or period
    cannot answer « quand », nor one with no quantity « combien »; other question words take any
    span."""
    from search.answer import span_kind

    q = "quand a eu lieu Dreamforce 2019 ?"
    reads = engine.readings(q)
    # the reading the rule is about: confident, and no date in it
    assert reads and reads[0].conf >= engine.answers.threshold and not span_kind("when", reads[0].span.text)
    res = engine.search(q, k=5)
    assert all(span_kind("when", a.span_text or "") for a in res.answers)
    assert res.answer is None and res.results
    # the seed answers are unchanged
    for question, span in (
        ("quand a eu lieu le salon du e-marketing ?", "les 24 et 25 janvier 2012"),
        ("qui a critiqué Salesforce ?", "des activistes"),
    ):
        a = engine.search(question, k=5).answer
        assert a is not None and a.span_text == span
    for qtype, ok, not_ok in (
        ("when", ["en 1870", "au XIXe siècle", "pendant la guerre", "le 3 mars", "in June"], ["son entreprise"]),
        ("howmany", ["170.000", "trois cents", "plusieurs milliers", "la troisième", "half"], ["des activistes"]),
    ):
        assert all(span_kind(qtype, s) for s in ok), qtype
        assert not any(span_kind(qtype, s) for s in not_ok), qtype
    assert span_kind("who", "son entreprise") and span_kind(None, "son entreprise")


def test_every_question_type_gets_a_span(engine) -> None:  # type: ignore[no-untyped-def]
    """Spans no longer depend on qui/quand/où/combien patterns: a « pourquoi » gets one too."""
    saved = engine.settings
    engine.settings = saved.model_copy(update={"reader_threshold": 0.0})
    try:
        a = engine.search("pourquoi des activistes ont-ils critiqué Salesforce ?", k=5).answer
    finally:
        engine.settings = saved
    assert a is not None and a.span is not None and a.span_text
    art = engine.article(a.doc_id)
    assert art.text[a.span[0] : a.span[1]] == a.span_text and a.start <= a.span[0] < a.span[1] <= a.end


def test_passage_evidence_says_which_article_retrieval_prefers(engine) -> None:  # type: ignore[no-untyped-def]
    """The reading features ``passage_score`` / ``passage_lead``: the seed question's passages
    (the first five all Dreamforce's) lead the best passage of another article, which trails;
    in dense mode (no second stage) both are 0."""
    from indexer.analysis import analyze
    from search.answer import passage_evidence

    q = "qui a critiqué Salesforce ?"
    qv = engine.runtime.encode_query(q)
    v = engine.store.view()
    ranked = engine._dedupe(engine.retrieve(q, qv, "hybrid", None, engine.settings.candidates, analyze(q), v))
    rescored = ranked[: engine.settings.rerank_depth]
    top = rescored[0].chunk.article
    assert v.article(top).doc_id == "dreamforce-2019"
    rival = next(c for c in rescored if c.chunk.article != top)  # the best of another article
    ev = passage_evidence(ranked[:5])
    assert ev[0] == pytest.approx((ranked[0].scores.final - 10.0, ranked[0].scores.final - rival.scores.final))
    assert ev[0][1] > 0 and all(lead <= ev[0][1] for _s, lead in ev)
    trail = passage_evidence([rival])[0][1]
    assert trail < 0 and trail == pytest.approx(rival.scores.final - ranked[0].scores.final)
    dense = engine._dedupe(engine.retrieve(q, qv, "dense", None, engine.settings.candidates, analyze(q), v))[:5]
    assert passage_evidence(dense) == [(0.0, 0.0)] * len(dense)


def test_span_evidence_reads_the_span_not_its_sentence(engine) -> None:  # type: ignore[no-untyped-def]
    """The reading features ``span_type`` / ``span_in_question`` / ``span_words`` (measured, not
    in the shipped confidence): of the span alone, on the real seed reading and on spans whose
    answers are known."""
    from indexer.analysis import analyze
    from search.answer import span_evidence

    top = engine.readings("qui a critiqué Salesforce ?", gate=False)[0]
    assert top.span.text == "des activistes"
    assert top.features["span_in_question"] == 0.0  # nothing of it is in the question
    assert top.features["span_words"] == pytest.approx(math.log1p(2))
    terms = set(analyze("combien d'exposants au salon ?"))
    assert span_evidence("howmany", terms, "24 exposants")["span_type"] == 1.0
    assert span_evidence("howmany", terms, "des exposants") == {
        "span_type": 0.0,
        "span_in_question": 1.0,  # it only repeats the question
        "span_words": pytest.approx(math.log1p(2)),
    }
    assert span_evidence("who", set(), "Marc Benioff")["span_type"] == 1.0  # a capital at the start counts
    assert span_evidence(None, set(), "Marc Benioff")["span_type"] == 0.0


def test_span_entity_says_whether_the_span_names_what_the_question_asks_for(engine) -> None:  # type: ignore[no-untyped-def]
    """« qui » asks for a person or a group, « où » and « quelle ville » for a place, « quelle
    entreprise » for an organisation; spaCy's French tagger says what a span names. A span that
    names nothing (« des activistes ») is neutral: a group need not be a name."""
    from search.answer import expected_entities, span_entity

    assert expected_entities("qui a critiqué Salesforce ?") == {"PER", "ORG"}
    assert expected_entities("où se tient Dreamforce ?") == {"LOC"}
    assert expected_entities("dans quelle ville a lieu Dreamforce ?") == {"LOC"}
    assert expected_entities("quelle entreprise belge est cliente de Salesforce ?") == {"ORG"}
    assert expected_entities("quand a eu lieu Dreamforce ?") is None
    stars = "Tim Cook, Barack Obama et Emilia Clarke sont les stars de cette année."
    assert span_entity(frozenset({"PER", "ORG"}), stars, 10, 22) == 1.0  # Barack Obama
    assert span_entity(frozenset({"LOC"}), stars, 10, 22) == -1.0  # a person is no place
    assert span_entity(None, stars, 10, 22) == 0.0
    # evaluation records the feature on every reading; the seed's answer names no entity
    engine.answers.entity_features = True
    try:
        top = engine.readings("qui a critiqué Salesforce ?", gate=False)[0]
    finally:
        engine.answers.entity_features = False
    assert top.span.text == "des activistes" and top.features["span_entity"] == 0.0


def test_window_and_decode_offsets() -> None:
    text = "Premier point. Des activistes ont critiqué Salesforce. Troisième phrase ici."
    spans = [(0, 14), (15, 54), (55, 76)]
    assert R.window_around(spans, 1) == (0, 76)
    assert R.window_around(spans, 1, chars=60) == (0, 54)
    assert R.cover(spans, chars=60) == [(0, 54), (55, 76)]

    class Tok:  # whitespace "tokenizer" with offsets, enough to pin encode/label/decode
        bos_token_id, eos_token_id = 0, 2

        def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False):  # type: ignore[no-untyped-def]
            import re

            ms = list(re.finditer(r"\S+", text))
            out: dict[str, list[Any]] = {"input_ids": [5] * len(ms)}
            if return_offsets_mapping:
                out["offset_mapping"] = [(m.start(), m.end()) for m in ms]
            return out

    window = text[15:54]
    f = R.label(R.encode(Tok(), "qui ?", window), window.index("Des"), window.index(" ont"))
    assert f.ids[f.start_label] == 5 and f.offsets[f.start_label - f.ctx_start] == (0, 3)
    start = np.full(len(f.ids), -5.0)
    end = np.full(len(f.ids), -5.0)
    start[f.start_label], end[f.end_label] = 3.0, 3.0
    a, b, span, null = R.decode(f, start, end, window)
    assert window[a:b] == "Des activistes" and span > null
    # a window over two paragraphs: the best start in one and the best end in the other never
    # make a span across the break
    two = "Fin du premier.\n\nDébut du second."
    g = R.encode(Tok(), "qui ?", two)
    start, end = np.full(len(g.ids), -5.0), np.full(len(g.ids), -5.0)
    start[g.ctx_start + 1], end[g.ctx_start + 4] = 4.0, 4.0  # « du » … « du »: across the break
    a, b, _span, _null = R.decode(g, start, end, two)
    assert "\n\n" not in two[a:b]
    # the article's title is read before the window but is never part of a span: the window's
    # tokens, labels and offsets are those without it, shifted past the title's tokens
    t = R.label(R.encode(Tok(), "qui ?", window, "Dreamforce 2019 à San Francisco"), 0, window.index(" ont"))
    assert t.ctx_start == f.ctx_start + 6  # « Dreamforce 2019 à San Francisco : »
    assert t.offsets == f.offsets and t.start_label - t.ctx_start == f.start_label - f.ctx_start
    start, end = np.full(len(t.ids), -5.0), np.full(len(t.ids), -5.0)
    start[f.ctx_start : t.ctx_start] = end[f.ctx_start : t.ctx_start] = 9.0  # the title's tokens score high…
    start[t.start_label], end[t.end_label] = 3.0, 3.0
    a, b, _span, _null = R.decode(t, start, end, window)
    assert window[a:b] == "Des activistes"  # …yet the span is the window's
    assert R.encode(Tok(), "qui ?", window, "  ").ids == f.ids  # a blank title is no title


def test_int8_delta_round_trip() -> None:
    """What ships is the e5 weights plus an int8 delta: unpacking gives the trained weights back."""
    import torch

    g = torch.Generator().manual_seed(0)
    base = {"layers.11.q.weight": torch.randn(384, 384, generator=g), "layers.11.q.bias": torch.zeros(384)}
    trained = {k: v + 0.01 * torch.randn(v.shape, generator=g) for k, v in base.items()}
    trained["qa.weight"] = torch.randn(2, 384, generator=g)
    packed = R.pack(trained, base, trained_layers=1)
    assert packed["layers.11.q.weight.dq"].dtype == torch.int8 and "layers.11.q.weight" not in packed
    back = R.unpack(packed, base)
    delta = trained["layers.11.q.weight"] - base["layers.11.q.weight"]
    err = (back["layers.11.q.weight"] - trained["layers.11.q.weight"]).abs().max()
    assert err <= delta.abs().max() / 127 + 1e-6  # half a quantisation step per row at most, and then some
    assert torch.equal(back["qa.weight"], trained["qa.weight"])


def test_damaged_artifact_is_refused_and_sentences_answer(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from search.answer import AnswerFinder

    bad = damaged_copy(tmp_path / "reader_model")
    eng = copy.copy(engine)
    s = engine.settings.model_copy(update={"reader_dir": bad})
    eng.answers = AnswerFinder(s, eng.runtime)  # its own, before the settings move with it
    eng.settings = s
    assert eng.answers.reader is None and "damaged" in (eng.answers.reader_error or "")
    a = eng.search("qui a critiqué Salesforce ?", k=5).answer  # the sentence answer, as before the reader
    assert a is not None and ACTIVISTS in a.text
    (bad / R.WEIGHTS).unlink()
    with pytest.raises(R.ReaderError, match="missing"):
        R.read_meta(bad)


def test_training_on_a_tiny_slice_lowers_the_loss() -> None:
    """The real training entry points (examples, features, train) on a few PIAF questions."""
    from tests.conftest import SHARED
    from training.reader_train import featurize, load_base, load_piaf, make_examples, train

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, _ = load_base()
    qas = qas[:8]
    examples = make_examples(passages, qas, random.Random(0), negatives=1)
    feats = featurize(tokenizer, examples)
    assert any(f.start_label for f in feats) and any(not f.start_label for f in feats)
    # each window carries its own article's title (an "other" window: another article's); the
    # default recipe reads none, --titles reads it before the window, where no label can point
    texts: dict[str, list[str]] = {}
    for p in passages.values():
        texts.setdefault(p.title, []).append(p.text)
    assert all(any(window in t for t in texts[title]) for _qa, window, _a, _b, _kind, title in examples)
    titled = featurize(tokenizer, examples, titles=True)
    assert all(t.ctx_start > f.ctx_start and t.offsets == f.offsets for t, f in zip(titled, feats, strict=True))
    assert all(
        t.start_label - t.ctx_start == f.start_label - f.ctx_start
        for t, f in zip(titled, feats, strict=True)
        if f.start_label
    )
    net = R.build_net()
    net.load_state_dict(R.from_bert_state(state), strict=False)
    losses = train(
        net, lambda _e: feats, train_layers=1, batch=8, lr=1e-3, head_lr=3e-3, max_steps=12, log=lambda _m: None
    )
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]) * 0.7


def test_shared_normalisation_compares_a_questions_windows() -> None:
    """--shared-norm: a question's windows are scored together, by margin over each window's
    no-answer score, as search compares them; a question none of whose windows holds the answer
    is pushed towards no answer everywhere. Then a few real training steps with it."""
    import torch

    from tests.conftest import SHARED
    from training.reader_train import (
        _question_batches,
        featurize,
        load_base,
        load_piaf,
        make_examples,
        shared_norm_loss,
        train,
    )

    def feat(qid: str, label: int) -> R.Feature:
        # 2 question tokens, then 4 window tokens (positions 2-5), then one token of padding
        return R.Feature([0] * 6, 2, [(0, 1)] * 4, label, label, {"qid": qid})

    feats = [feat("q", 3), feat("q", 0), feat("r", 0)]
    start = torch.tensor([[1.0, 0, 0, 4, 0, 0, 9], [2.0, 0, 0, 0, 0, 0, 9], [0.0, -1, -1, -1, -1, -1, 9]])
    end = start.clone()

    def expected(x: torch.Tensor) -> float:
        m = x - x[:, :1]  # margins; the padding (9) is no position
        q = torch.logsumexp(torch.cat([torch.zeros(1), m[:2, 2:6].flatten()]), 0) - m[0, 3]
        r = torch.logsumexp(torch.cat([torch.zeros(1), m[2, 2:6]]), 0)
        return float((q + r) / 2)

    got = float(shared_norm_loss(start, end, feats))
    assert abs(got - expected(start)) < 1e-5
    rival = start.clone()
    rival[1, 4] = 6.0  # the window without the answer now holds a strong span: a worse pick
    assert float(shared_norm_loss(rival, rival, feats)) > got + 0.5
    quiet = start.clone()
    quiet[2, 2:6] = -5.0  # the no-answer question's windows abstain more firmly: a lower loss
    assert float(shared_norm_loss(quiet, quiet, feats)) < got

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, _ = load_base()
    real = featurize(tokenizer, make_examples(passages, qas[:8], random.Random(0), negatives=1))
    batches = _question_batches(real, 5, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(len(real)))
    home = {real[i].meta["qid"]: k for k, b in enumerate(batches) for i in b}
    assert all(home[real[i].meta["qid"]] == k for k, b in enumerate(batches) for i in b)
    net = R.build_net()
    net.load_state_dict(R.from_bert_state(state), strict=False)
    losses = train(
        net,
        lambda _e: real,
        train_layers=1,
        batch=8,
        lr=1e-3,
        head_lr=3e-3,
        max_steps=12,
        log=lambda _m: None,
        shared_norm=1.0,
    )
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]) * 0.7


def test_cloze_questions_point_at_a_span_their_window_holds(capsys: pytest.CaptureFixture[str]) -> None:
    """``--cloze``: questions made from OrangeSum articles (a recurring name or number replaced by
    qui / combien) whose answer is another occurrence, read in its own window; no-answer windows
    of the same article lack it; evaluation articles are never used. Then the command runs both
    stages end to end on a tiny slice."""
    import json

    from tests.conftest import SHARED
    from training.reader_train import cloze_examples, main

    folder = SHARED / "eval" / "orangesum"
    ex = cloze_examples(folder, 60, random.Random(0), log=lambda _m: None)
    assert 60 <= len(ex) <= 61
    with (folder / "headlines-valid.jsonl").open(encoding="utf-8") as f:
        held_out = {json.loads(line)["gold_doc_id"] for line in f}
    pos = [e for e in ex if e[4] == "pos"]
    assert len(pos) >= 30 and any(e[4] == "same" for e in ex)
    for qa, window, a, b, kind, title in ex:
        assert title == ""  # news paragraphs carry no title
        assert qa.passage not in held_out and qa.question.endswith("?")
        answer = qa.answers[0][0]
        if kind == "pos":
            assert a is not None and window[a:b] == answer
            assert re.search(r"\b(qui|combien)\b", qa.question)
        else:
            assert a is None and answer not in window
    main(
        [
            str(SHARED / "eval" / "piaf-dev"),
            *("--cloze", "40", "--limit", "6", "--epochs", "1", "--max-steps", "2"),
            *("--eval-limit", "0", "--no-save", "--layers", "1"),
        ]
    )
    err = capsys.readouterr().err
    assert "cloze: " in err and err.count("step 2/2") == 2


def test_a_shallower_reader_ships_and_loads_at_its_depth(tmp_path: Path) -> None:
    """``--depth``: a reader kept to e5's bottom layers is saved with its depth and loads back as
    that network, reading as it did before packing (int8 deltas: logits within a little)."""
    from tests.conftest import SHARED
    from training.reader_train import featurize, load_base, load_piaf, make_examples, save_artifact, train

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, model_id = load_base()
    feats = featurize(tokenizer, make_examples(passages, qas[:4], random.Random(0), negatives=1))
    base = R.from_bert_state(state, 2)
    assert "layers.1.q.weight" in base and "layers.2.q.weight" not in base
    net = R.build_net(n_layers=2)
    net.load_state_dict(base, strict=False)
    train(net, lambda _e: feats, train_layers=2, batch=8, lr=1e-3, max_steps=2, log=lambda _m: None)
    meta = save_artifact(net, base, 2, {"base_model_id": model_id, "format": R.FORMAT}, tmp_path)
    assert meta["depth"] == 2
    reader = R.Reader.load(state, tokenizer, model_id, tmp_path)
    assert len(reader.net.layers) == 2
    import torch

    ids, mask = R.pad(feats[:2])
    with torch.no_grad():
        want = [t.numpy() for t in net.eval()(torch.from_numpy(ids), torch.from_numpy(mask))]
    got = reader.logits(feats[:2])
    assert max(float(np.abs(g - w)[mask == 1].max()) for g, w in zip(got, want, strict=True)) < 0.05


def test_the_int8_export_uses_the_smoothing_factors_the_artifact_stores(tmp_path: Path) -> None:
    """The int8 reader is made from the artifact's stored smoothing factors, not from factors
    measured again on each machine (whose float noise moved calib F1 by a point): a row of zeros
    keeps that layer's feed-forward output in fp32, the others are smoothed and quantised."""
    import onnx
    from safetensors.torch import load_file, save_file

    from tests.conftest import SHARED
    from training.reader_train import featurize, load_base, load_piaf, make_examples, save_artifact, train

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, model_id = load_base()
    feats = featurize(tokenizer, make_examples(passages, qas[:4], random.Random(0), negatives=1))
    base = R.from_bert_state(state, 2)
    net = R.build_net(n_layers=2)
    net.load_state_dict(base, strict=False)
    train(net, lambda _e: feats, train_layers=2, batch=8, lr=1e-3, max_steps=1, log=lambda _m: None)
    art = tmp_path / "reader"
    meta = save_artifact(net, base, 2, {"base_model_id": model_id}, art, (state, tokenizer, model_id))
    packed = load_file(str(art / R.WEIGHTS))
    stored = packed[R.SMOOTHING]
    assert tuple(stored.shape) == (2, 1536) and meta["sha256"] == sha256_file(art / R.WEIGHTS)
    reader = R.Reader.load(state, tokenizer, model_id, art)
    assert reader.smoothing is not None and torch_equal(reader.smoothing, stored)
    # measured here again, the factors agree with the stored ones (same weights, same probes)
    assert float((R.smoothing_factors(reader.net, tokenizer) - stored).abs().max()) < 1e-3 * float(stored.max())
    smoothed = {i: bool((stored[i] > 0).all()) for i in (0, 1)}  # a row of zeros: an outlier layer
    assert any(smoothed.values())

    def quantised_fo(onnx_dir: Path) -> dict[int, bool]:
        R.Reader.load(state, tokenizer, model_id, art, onnx_dir, int8=True)  # raises if int8 strays from fp32
        (path,) = onnx_dir.glob("*-int8s.onnx")
        nodes = onnx.load(str(path)).graph.node
        fp32 = {i for i in (0, 1) for n in nodes if n.op_type == "MatMul" and n.name.startswith(f"/layers.{i}/fo/")}
        return {i: i not in fp32 for i in (0, 1)}

    assert quantised_fo(tmp_path / "onnx-a") == smoothed
    k = max(i for i, v in smoothed.items() if v)
    packed[R.SMOOTHING][k] = 0.0  # the artifact says: keep layer k's product in fp32
    save_file(packed, str(art / R.WEIGHTS), metadata={"format": R.FORMAT})
    meta["sha256"] = sha256_file(art / R.WEIGHTS)
    (art / R.META).write_text(json.dumps(meta), encoding="utf-8")
    assert quantised_fo(tmp_path / "onnx-b") == {**smoothed, k: False}
    packed[R.SMOOTHING] = stored[:1]
    save_file(packed, str(art / R.WEIGHTS), metadata={"format": R.FORMAT})
    meta["sha256"] = sha256_file(art / R.WEIGHTS)
    (art / R.META).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(R.ReaderError, match="smoothing factors have shape"):
        R.Reader.load(state, tokenizer, model_id, art)


def torch_equal(a: Any, b: Any) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_distillation_pulls_the_student_towards_the_teacher() -> None:
    """``--teacher``: the teacher's span scores are stored per window and a student trained on them
    alone (``distil=1``) moves its own scores towards them."""
    import torch

    from tests.conftest import SHARED
    from training.reader_train import (
        _soft_ce,
        _teacher_batch,
        add_teacher_logits,
        featurize,
        load_base,
        load_piaf,
        make_examples,
        train,
    )

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, _ = load_base()
    feats = featurize(tokenizer, make_examples(passages, qas[:4], random.Random(0), negatives=1))
    torch.manual_seed(0)
    teacher = R.build_net(n_layers=2)  # an untrained span head: scores the gold labels do not teach
    teacher.load_state_dict(R.from_bert_state(state, 2), strict=False)
    add_teacher_logits(R.Reader(teacher.eval(), tokenizer, {}), feats, batch=3)
    assert all(len(f.meta["teacher"][0]) == len(f.ids) for f in feats)
    ids, mask = R.pad(feats)
    ts, te = _teacher_batch(feats, ids.shape[1])

    def gap_after(distil: float) -> float:
        """How far a 1-layer student's span scores are from the teacher's after 10 steps."""
        student = R.build_net(n_layers=1)
        student.load_state_dict(R.from_bert_state(state, 1), strict=False)
        train(
            student,
            lambda _e: feats,
            1,
            batch=8,
            lr=1e-3,
            head_lr=3e-3,
            max_steps=10,
            log=lambda _m: None,
            distil=distil,
        )
        with torch.no_grad():
            s, e = student.eval()(torch.from_numpy(ids), torch.from_numpy(mask))
        return float(_soft_ce(s, ts, 2.0) + _soft_ce(e, te, 2.0))

    assert gap_after(1.0) < 0.5 * gap_after(0.0)


def test_training_can_ship_the_mean_of_its_last_epochs() -> None:
    """``average_last``: the weights left in the net are the mean of the last epochs' weights,
    not the last epoch's nor the best one's."""
    from tests.conftest import SHARED
    from training.reader_train import featurize, load_base, load_piaf, make_examples, train

    passages, qas = load_piaf(SHARED / "eval" / "piaf-dev")
    state, tokenizer, _ = load_base()
    feats = featurize(tokenizer, make_examples(passages, qas[:4], random.Random(0), negatives=1))
    net = R.build_net()
    net.load_state_dict(R.from_bert_state(state), strict=False)
    seen: list[np.ndarray] = []

    def on_epoch(_e: int) -> float:
        seen.append(net.qa.weight.detach().float().numpy().copy())
        return -len(seen)  # the first epoch "best": averaging must ignore it

    train(
        net,
        lambda _e: feats,
        train_layers=1,
        epochs=3,
        batch=8,
        lr=1e-3,
        head_lr=3e-2,
        log=lambda _m: None,
        on_epoch=on_epoch,
        average_last=2,
    )
    assert len(seen) == 3 and not np.allclose(seen[1], seen[2])
    np.testing.assert_allclose(net.qa.weight.detach().numpy(), (seen[1] + seen[2]) / 2, rtol=1e-5, atol=1e-6)


def test_answer_confidence_is_fitted_on_the_features_it_names() -> None:
    """The fit keeps the named features only, ranks right readings above wrong ones, and picks the
    lowest threshold at which its own expected precision reaches 0.85 and that abstains on
    questions whose article is missing (the counted precision there too, on well-behaved data)."""
    from search.evaluate import expected_precision, fit_answer_confidence, top_readings

    rng = random.Random(0)

    def reading(ok: bool) -> tuple[dict[str, float], bool, float]:
        f = {name: rng.gauss(0, 1) for name in R.FEATURES}
        f["margin"] = rng.gauss(6.0 if ok else 0.0, 2.0)
        return f, ok, float(ok)

    present = [[reading(rng.random() < 0.6), reading(False)] for _ in range(300)]
    absent = [[reading(False), reading(False)] for _ in range(300)]
    cal = fit_answer_confidence(present, absent, features=("margin", "sim"))
    assert cal["features"] == ["margin", "sim"] and len(cal["weights"]) == 2
    assert cal["weights"][0] > 0 and abs(cal["weights"][1]) < cal["weights"][0]
    at = cal["at_threshold"]
    assert at["precision"] >= 0.85 and at["abstains"] >= 0.85 and at["answered"] > 0.3
    tp = top_readings(present, cal)
    t = cal["threshold"]
    assert expected_precision(tp, t) >= 0.85 > expected_precision(tp, round(t - 0.01, 2))
    assert (
        fit_answer_confidence(present, absent, features=("margin", "sim"), rule="counted")["at_threshold"]["precision"]
        >= 0.85
    )
    with pytest.raises(ValueError, match="threshold rule"):
        fit_answer_confidence(present, absent, rule="best")
    hi, lo = {**present[0][0][0], "margin": 9.0}, {**present[0][0][0], "margin": -3.0}
    assert R.confidence(hi, cal) > cal["threshold"] > R.confidence(lo, cal)
    # a calibration from before features were named reads the first three
    old = {"weights": [1.0, 0.0, 0.0], "bias": -2.0}
    assert abs(R.confidence(hi, old) - 1 / (1 + np.exp(-7.0))) < 1e-9
    # the gate's bound: the largest margin fitted on, plus the offset; none where it cannot bound
    top = max(f["margin"] for q in present + absent for f, _, _ in q)
    assert cal["margin_max"] == pytest.approx(top, abs=1e-4)
    assert R.margin_bound(cal) == pytest.approx(top + R.MARGIN_OFFSET, abs=1e-4)
    assert R.margin_bound(old) is None  # no margin_max recorded
    assert R.margin_bound({**cal, "features": ["margin", "agreement"]}) is None  # known only after reading


def test_a_small_index_corrects_the_confidence(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every reading carries the index's size (log10 of its passages), how many decades it falls
    below ``SMALL_INDEX`` passages and the passage lead scaled by that, all known before reading
    (the gate can bound them). A correction fitted on small corpora with the base confidence held
    fixed leaves an index of 1,000 passages or more as it was; the shipped one makes the seed
    answer over two articles less sure than the same reading over a large index."""
    import json

    from search.evaluate import fit_size_correction, without_size_correction
    from training.calibration import small_corpora

    top = engine.readings("qui a critiqué Salesforce ?", gate=False)[0]
    chunks = engine.manifest.counts["chunks"]
    f = top.features
    assert f["log_chunks"] == pytest.approx(math.log10(chunks)) and chunks < R.SMALL_INDEX
    assert f["small_index"] == pytest.approx(math.log10(R.SMALL_INDEX / chunks))
    assert f["lead_x_small"] == pytest.approx(f["passage_lead"] * f["small_index"])
    assert {"log_chunks", "small_index", "lead_x_small"} <= R.KNOWN_BEFORE_READING
    big = {**f, **R.size_features(5000, f["passage_lead"])}
    assert big["small_index"] == big["lead_x_small"] == 0.0

    shipped = R.read_meta(R.ARTIFACT_DIR)["calibration"]
    assert shipped["size_correction"]["features"] == ["small_index", "lead_x_small"]
    assert R.confidence(f, shipped) < R.confidence(big, shipped)

    # fitted here on the seed corpus's real readings, where the base is surer than they deserve
    # (every reading called wrong): the correction lowers them, not a large index's
    base = without_size_correction(shipped)
    qs = [
        "qui a critiqué Salesforce ?",
        "où se tient Dreamforce ?",
        "qui dirige Salesforce ?",
        "quand a eu lieu Dreamforce ?",
    ]
    reads = [[(r.features, False, 0.0) for r in engine.readings(q, gate=False)] for q in qs]
    fitted = fit_size_correction(base, reads * 5, [])
    assert fitted["threshold"] == base["threshold"] and fitted["size_correction"]["readings"] == 5 * sum(
        map(len, reads)
    )
    assert R.confidence(big, fitted) == pytest.approx(R.confidence(big, base))
    assert R.confidence(f, fitted) < R.confidence(f, base)

    # training/calibration.py reads the cached small-corpus readings: present at every size,
    # absent and answer-removed as negatives, their size features recomputed
    stale = {**f, "lead_x_small": -1.0}
    cache = tmp_path / "small.json"
    cache.write_text(
        json.dumps(
            {"1/0": [[[stale, True, 1.0]]], "1/0/absent": [[[f, False, 0.0]]], "1/0/removed": [[[f, False, 0.0]]]}
        )
    )
    present, absent = small_corpora([cache])
    assert [[ok for _, ok, _ in q] for q in present] == [[True]] and len(absent) == 2
    assert present[0][0][0]["lead_x_small"] == pytest.approx(f["lead_x_small"])


def test_self_distillation_reads_the_previous_epoch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--self-distil``: the first epoch learns the answers alone; the second also learns the span
    scores of the first epoch's checkpoint, read back in int8 ONNX. It needs ``--checkpoints``."""
    from tests.conftest import SHARED
    from training.reader_train import main

    data = str(SHARED / "eval" / "piaf-dev")
    with pytest.raises(SystemExit):
        main([data, "--self-distil", "--no-save"])
    assert "--self-distil needs --checkpoints" in capsys.readouterr().err
    main(
        [
            data,
            *("--self-distil", "--checkpoints", str(tmp_path), "--depth", "2", "--limit", "6", "--epochs", "2"),
            *("--average-last", "1", "--eval-limit", "2", "--no-save"),
        ]
    )
    err = capsys.readouterr().err
    assert "epoch 2: span scores of epoch 1's weights read (onnx-int8)" in err
    assert (tmp_path / "epoch-1").is_dir() and (tmp_path / "epoch-2").is_dir()


def test_training_on_calib_takes_a_confidence_fitted_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--train-splits train,calib`` trains on calib articles too, scores no epoch on them, and
    refuses test; ``--calibration-from`` copies a confidence fitted on another reader's calib
    readings, saying whose, and refuses a damaged source."""
    from tests.conftest import SHARED
    from training.reader_train import main

    data = str(SHARED / "eval" / "piaf-dev")
    with pytest.raises(SystemExit):
        main([data, "--train-splits", "train,test", "--no-save"])
    assert "--train-splits must be train or train,calib" in capsys.readouterr().err
    main([data, "--train-splits", "train,calib", "--depth", "2", "--limit", "4", "--epochs", "1", "--no-save"])
    err = capsys.readouterr().err
    assert "trained on train, calib: 3811 questions, the first 4" in err
    assert "calib (gold passage" not in err  # an epoch is never scored on questions trained on

    shipped = R.read_meta()
    dest = tmp_path / "reader"
    shutil.copytree(R.ARTIFACT_DIR, dest)
    meta = json.loads((dest / R.META).read_text(encoding="utf-8"))
    meta["calibration"] = {}
    (dest / R.META).write_text(json.dumps(meta), encoding="utf-8")
    main(["--calibration-from", str(R.ARTIFACT_DIR), "--out", str(dest)])
    got = R.read_meta(dest)  # same weights: the sha256 still holds
    assert got["calibration"]["weights"] == shipped["calibration"]["weights"]
    assert got["calibration"]["threshold"] == shipped["calibration"]["threshold"]
    assert "readings of reader" in got["calibration"]["fitted_on"]

    with pytest.raises(SystemExit, match="damaged"):
        main(["--calibration-from", str(damaged_copy(tmp_path / "damaged")), "--out", str(dest)])


def test_the_reader_network_reads_e5_as_bert_does_over_the_engines_embedding_table(engine, embedder) -> None:  # type: ignore[no-untyped-def]
    """Why the reader's network is written out (``build_net``) holds: the same hidden states as
    transformers' BertModel on the e5 weights, and the reader search loads starts from the rows
    of the word-embedding table the query encoder reads, not from a copy of its own."""
    import torch

    bert = embedder.model[0].auto_model.eval()
    net = R.build_net()
    net.load_state_dict(R.from_bert_state(bert.state_dict()), strict=False)
    net.eval()
    texts = ["query: qui a critiqué Salesforce ?", "passage: Des activistes ont critiqué le contrat signé."]
    enc = embedder.model.tokenizer(texts, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.inference_mode():
        want = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = net.lower(ids, mask, len(net.layers))
    real = mask.bool()  # padding positions are masked differently (-1e4 against -inf) and never read
    assert float((got - want)[real].abs().max()) < 1e-4

    # search's reader runs in ONNX Runtime over the rows of the table the query encoder reads
    reader = engine.answers.reader
    assert reader.net is None and reader.embed is engine.runtime.embeddings

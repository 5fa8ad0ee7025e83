"""The extractive reader: spans in article offsets, abstention, a damaged artifact, a tiny training run."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest

from search import reader as R

pytestmark = pytest.mark.model

ACTIVISTS = "des activistes critiquant le récent contrat"


@pytest.fixture(scope="module")
def reader_engine(engine):  # type: ignore[no-untyped-def]
    """The session's engine with the reader switched on (it is off by default, see docs/quality.md)."""
    from search.answer import AnswerFinder

    eng = copy.copy(engine)
    eng.settings = engine.settings.model_copy(update={"reader": True})
    eng.answers = AnswerFinder(eng)
    return eng


@pytest.mark.xfail(reason="shipped reader: « des activistes » at confidence 0.455 < threshold 0.57, abstains")
def test_salesforce_span_inside_its_sentence(reader_engine) -> None:  # type: ignore[no-untyped-def]
    engine = reader_engine
    assert engine.answers.reader is not None, engine.answers.reader_error
    res = engine.search("qui a critiqué Salesforce ?", k=5)
    a = res.answer
    assert a is not None and a.span is not None
    assert a.span_text == "des activistes"
    art = engine.article(a.doc_id)
    assert art.text[a.span[0] : a.span[1]] == a.span_text
    assert a.start <= a.span[0] < a.span[1] <= a.end and ACTIVISTS in a.text
    assert art.text[a.start : a.end] == a.text


def test_reader_spans_map_into_the_article(reader_engine) -> None:  # type: ignore[no-untyped-def]
    engine = reader_engine
    saved = engine.settings
    engine.settings = saved.model_copy(update={"reader_threshold": 0.0})
    try:
        a = engine.search("qui a critiqué Salesforce ?", k=5).answer
    finally:
        engine.settings = saved
    assert a is not None and a.span is not None and a.span_text == "des activistes"
    art = engine.article(a.doc_id)
    assert art.text[a.span[0] : a.span[1]] == a.span_text and art.text[a.start : a.end] == a.text
    assert a.start <= a.span[0] < a.span[1] <= a.end and ACTIVISTS in a.text


@pytest.mark.xfail(reason="shipped reader answers « Marc Benioff » to the English question")
def test_english_question_gets_the_french_span(reader_engine) -> None:  # type: ignore[no-untyped-def]
    a = reader_engine.search("Who criticized Salesforce?", k=5).answer
    assert a is not None and a.span_text is not None and "activistes" in a.span_text


@pytest.mark.parametrize(
    "question", ["combien d'exposants au salon du e-marketing ?", "quelle est la recette de la tarte tatin ?"]
)
def test_no_answer_in_the_corpus(reader_engine, question: str) -> None:  # type: ignore[no-untyped-def]
    assert reader_engine.search(question, k=5).answer is None


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
            out = {"input_ids": [5] * len(ms)}
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


def test_damaged_artifact_is_refused_and_sentences_answer(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from search.answer import AnswerFinder

    bad = tmp_path / "reader_model"
    shutil.copytree(R.ARTIFACT_DIR, bad)
    data = bytearray((bad / R.WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / R.WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(R.ReaderError, match="damaged"):
        R.read_meta(bad)
    (bad / R.WEIGHTS).unlink()
    with pytest.raises(R.ReaderError, match="missing"):
        R.read_meta(bad)
    eng = copy.copy(engine)
    eng.settings = engine.settings.model_copy(update={"reader": True, "reader_dir": bad})
    eng.answers = AnswerFinder(eng)
    assert eng.answers.reader is None and "missing" in (eng.answers.reader_error or "")
    a = eng.search("qui a critiqué Salesforce ?", k=5).answer  # the sentence answer, as before the reader
    assert a is not None and ACTIVISTS in a.text


def test_training_on_a_tiny_slice_lowers_the_loss() -> None:
    from search.reader_train import QA, featurize, load_base, train

    state, tokenizer, _ = load_base()
    window = "Le salon a accueilli 150 exposants venus de toute la France, du 24 au 26 janvier 2012."
    pairs = [
        ("combien d'exposants ?", "150 exposants"),
        ("quand a eu lieu le salon ?", "du 24 au 26 janvier 2012"),
        ("d'où venaient les exposants ?", "de toute la France"),
        ("qui a accueilli les exposants ?", "Le salon"),
    ]
    examples = []
    for i, (q, ans) in enumerate(pairs):
        a = window.index(ans)
        qa = QA(str(i), q, "p", [(ans, a)])
        examples.append((qa, window, a, a + len(ans), "pos"))
        examples.append((qa, "La tarte tatin se prépare avec des pommes caramélisées.", None, None, "other"))
    feats = featurize(tokenizer, examples)
    net = R.build_net()
    net.load_state_dict(R.from_bert_state(state), strict=False)
    losses = train(net, feats, train_layers=1, batch=8, lr=1e-3, head_lr=3e-3, max_steps=12, log=lambda _m: None)
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3]) * 0.7

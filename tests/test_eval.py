from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from search.evaluate import _f1, load_dataset, metrics_for
from tests.conftest import SHARED

PIAF = SHARED / "eval" / "piaf-dev"
ORANGESUM = SHARED / "eval" / "orangesum"


def test_metrics_are_right_on_a_hand_example() -> None:
    m = metrics_for([1, 2, None, 11], [10.0, 20.0, 30.0, 40.0])
    assert m["R@1"] == 0.25 and m["R@5"] == 0.5 and m["R@20"] == 0.75
    assert m["MRR@10"] == pytest.approx((1 + 0.5) / 4)
    assert m["nDCG@10"] == pytest.approx((1 + 1 / 1.584962500721156) / 4)
    assert m["p50_ms"] == 25.0
    assert _f1("des activistes", "les activistes") == 1.0 and _f1("Paris", "Lyon") == 0.0


def test_orangesum_layout_subset_keeps_gold_documents() -> None:
    ds = load_dataset(ORANGESUM, max_docs=60, limit=25)
    ids = {a.id for a in ds.articles}
    assert len(ds.articles) == 60 and len(ds.questions) == 25
    assert all(q.gold_doc in ids for q in ds.questions)
    # an article is its paragraphs, in file order, one blank line apart
    import gzip
    import json as _json

    gold = ds.questions[0].gold_doc
    with gzip.open(ORANGESUM / "paragraphs.jsonl.gz", "rt", encoding="utf-8") as f:
        paras = [p["text"] for p in map(_json.loads, f) if p["doc_id"] == gold]
    assert next(a for a in ds.articles if a.id == gold).text.split("\n\n") == paras
    assert "all gold" in ds.note


@pytest.mark.model
def test_salon_eval_on_a_piaf_subset() -> None:
    from salon.cli import main

    out = CliRunner().invoke(main, ["eval", str(PIAF), "--json", "--limit", "30", "--max-docs", "40"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.output[out.output.index("{") :])
    assert r["documents"] == 40 and r["questions"] == 30
    for mode in ("lexical", "dense", "hybrid"):
        assert set(r["modes"][mode]) >= {"R@1", "R@5", "R@20", "MRR@10", "nDCG@10", "p50_ms", "p95_ms"}
    # on 40 passages the right one is almost always in the top 5, whatever the mode
    assert r["modes"]["hybrid"]["R@5"] >= 0.8
    assert r["modes"]["hybrid"]["MRR@10"] >= r["modes"]["dense"]["MRR@10"] - 0.05
    assert 0 <= r["modes"]["hybrid"]["abstention"] <= 1


@pytest.mark.model
def test_salon_eval_reports_the_reader_on_a_split() -> None:
    """Reader alone on the gold article, end-to-end spans, and abstention without the articles."""
    from salon.cli import main

    args = ["eval", str(PIAF), "--json", "--mode", "hybrid", "--split", "test", "--limit", "15", "--max-docs", "60"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    r = json.loads(out.output[out.output.index("{") :])
    m, reader = r["modes"]["hybrid"], r["reader"]
    assert m["answers_by"] == "reader" and 0 <= m["answered"] <= 1
    assert m["span_f1"] <= m["span_f1_no_abstention"] + 1e-9
    assert reader["gold_questions"] == 15 and reader["gold_f1"] >= 0.2
    # the left-out index holds none of the questions' articles, and the count says so
    assert r["absent"]["documents"] < r["documents"] and 0 <= r["absent"]["abstains"] <= 1
    assert "split" in r["note"]


def test_reworded_questions_replace_the_originals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--questions asks the same PIAF questions in another wording (bench/data: English), against
    the same gold answers; a file naming a question the dataset lacks is refused, not half-used."""
    from tests.conftest import ROOT

    en = ROOT / "bench" / "data" / "piaf-en-questions.jsonl"
    ds = load_dataset(PIAF, split="test", questions=en)
    original = {q.qid: q for q in load_dataset(PIAF, split="test").questions}
    assert len(ds.questions) == 160 and "reworded" in ds.note
    for q in ds.questions:
        assert q.text != original[q.qid].text and q.answers == original[q.qid].answers
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "nope", "question": "Who?"}\n', encoding="utf-8")
    with pytest.raises(SystemExit, match="not in the dataset"):
        load_dataset(PIAF, questions=bad)
    bad.write_text("not json\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="expected JSON lines"):
        load_dataset(PIAF, questions=bad)


def test_fit_reader_refuses_the_test_split_and_other_weights(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The confidence is fitted on calib (or train), never on the articles it is reported on, and
    only into a folder named on the command line that holds the reader evaluated (or a new one)."""
    from salon.cli import main
    from search.reader import ARTIFACT_DIR

    before = (ARTIFACT_DIR / "reader.json").read_bytes()
    out = CliRunner().invoke(main, ["eval", str(PIAF), "--split", "test", "--fit-reader", str(tmp_path / "r")])
    assert out.exit_code == 2 and "test is for reporting only" in out.output
    out = CliRunner().invoke(main, ["eval", str(PIAF), "--fit-reader", str(tmp_path / "r")])
    assert out.exit_code == 2 and "--split calib" in out.output
    other = tmp_path / "other"
    other.mkdir()
    (other / "reader.json").write_text("{}", encoding="utf-8")
    out = CliRunner().invoke(main, ["eval", str(PIAF), "--split", "calib", "--fit-reader", str(other)])
    assert out.exit_code == 2 and str(other) in out.output
    assert (ARTIFACT_DIR / "reader.json").read_bytes() == before and not (tmp_path / "r").exists()


def test_small_corpus_evaluation_computes_its_figures(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """bench-small on a tiny slice: calib questions over their article plus 1 and 3 others, two
    draws; every figure is computed and in range (its values are the bench's business)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "small.json"
    args = [sys.executable, "bench/small_corpus.py", str(PIAF), "--split", "calib", "--limit", "8"]
    args += ["--sizes", "1,3", "--draws", "2", "--removed", "1", "--cache", str(tmp_path), "--json", str(out)]
    run = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "| k = 1 | 2 |" in run.stdout and "ECE" in run.stdout
    sizes = json.loads(out.read_text())["sizes"]
    for k in ("1", "3"):
        r = sizes[k]
        assert r["draws"] == 2 and r["questions"] > 0 and len(r["precision_by_draw"]) == 2
        assert all(0 <= r[m] <= 1 for m in ("answered", "precision", "span_f1", "ece", "abstains_without_article"))
        assert r["absent_questions"] > 0  # each corpus was also asked another group's questions
        assert sum(b["n"] for b in r["reliability"]) == round(r["answered"] * r["questions"])
    # at k = 1 the articles were also indexed without their answers' sentences, and asked again
    assert sizes["1"]["removed_questions"] > 0 and 0 <= sizes["1"]["abstains_without_answer"] <= 1

"""Train the extractive reader on PIAF: ``python -m training.reader_train ../shared/eval/piaf-dev``.

Data: PIAF dev (passages + questions, MIT), split by a fixed hash of the article title into
train / calib / test (``split_of``): the reader is trained on train articles (``--train-splits
train,calib``: train and calib), its confidence is calibrated on calib articles read by a reader
that never saw them, and figures are reported on test articles, never trained or tuned on.

Examples are windows shaped like the ones read at query time (a sentence plus neighbours,
``reader.window_around``): per question, a window holding the answer, a window of the same
passage without it, and a window around the best-matching sentence of a BM25-retrieved
passage of another article (the reader learns to abstain). Windows are drawn afresh every
epoch. All 12 encoder layers and the head are trained (layer-wise learning-rate decay: the top
layer at ``--lr``, each layer below × 0.85); the embedding table stays e5's; the mean of the last
3 epochs' weights ships. About 65 minutes on 2 cores (88 with calib); then fit the answer
confidence with ``python -m training.calibration`` (``salon train-reader`` runs every stage), or
take one fitted so with ``--calibration-from``.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.files import sha256_file, staged_folder, write_atomic
from search import reader as R
from search.evaluate import SPLITS, GoldRead, Question, gold_passage_scores, load_dataset, split_of


@dataclass
class Passage:
    id: str
    title: str
    text: str
    sentences: list[tuple[int, int]]


@dataclass
class QA:
    qid: str
    question: str
    passage: str
    answers: list[tuple[str, int]]  # (text, char start in the passage)


def load_piaf(folder: Path) -> tuple[dict[str, Passage], list[QA]]:
    """PIAF as the evaluation reads it (``evaluate.load_dataset``), in training's shape: every
    passage with its sentence spans, and the questions ``placed_answers`` keeps."""
    from indexer.chunking import split_sentences

    ds = load_dataset(folder)
    passages: dict[str, Passage] = {}
    for a in ds.articles:
        sents = [(s.start, s.end) for s in split_sentences(a.text)] or [(0, len(a.text))]
        passages[a.id] = Passage(a.id, a.title, a.text, sents)
    return passages, placed_answers(ds.questions, passages)


def placed_answers(questions: list[Question], passages: dict[str, Passage]) -> list[QA]:
    """Training's filter: each question with only the answers whose text stands at their
    ``answer_start`` (a training window is placed by that offset), and none of the questions left
    without one. The evaluation compares answer texts and keeps them all: in PIAF dev the two
    differ on one question of 4,655 (a train article's, whose offset misses its answer)."""
    out = []
    for q in questions:
        text = passages[q.gold_doc].text
        answers = [(a, i) for a, i in zip(q.answers, q.starts, strict=True) if i >= 0 and text[i : i + len(a)] == a]
        if answers:
            out.append(QA(q.qid, q.text, q.gold_doc, answers))
    return out


# One training example: the question, the window's text, the answer's start and end in the window
# (None: no answer there), its kind ("pos", "same", "other") and the title of the window's article.
Example = tuple[QA, str, int | None, int | None, str, str]


def _contains_answer(window: str, qa: QA) -> bool:
    w = R.normalize_answer(window)
    return any(R.normalize_answer(a) and f" {R.normalize_answer(a)} " in f" {w} " for a, _ in qa.answers)


def make_examples(passages: dict[str, Passage], qas: list[QA], rng: random.Random, negatives: int = 2) -> list[Example]:
    """(question, window text, answer start, answer end in the window or None, kind, title) per example."""
    import bm25s

    from indexer.analysis import analyze

    pids = sorted(
        {qa.passage for qa in qas}
        | {p for p in passages if passages[p].title in {passages[qa.passage].title for qa in qas}}
    )
    bm = bm25s.BM25(method="lucene")
    bm.index([analyze(passages[p].text) or ["\x00empty"] for p in pids], show_progress=False)
    out: list[Example] = []
    for qa in qas:
        p = passages[qa.passage]
        text, a0 = qa.answers[0][0], qa.answers[0][1]
        a1 = a0 + len(text)
        wins = [R.window_around(p.sentences, c) for c in range(len(p.sentences))]
        holding = [w for w in wins if w[0] <= a0 and a1 <= w[1]]
        centre = next((c for c, (s, e) in enumerate(p.sentences) if s <= a0 < e), None)
        if centre is not None and p.sentences[centre][0] <= a0 and a1 <= wins[centre][1] and rng.random() < 0.7:
            pos = wins[centre]
        elif holding:
            pos = rng.choice(holding)
        else:
            pos = (min(s for s, _ in p.sentences), max(e for _, e in p.sentences))
        out.append((qa, p.text[pos[0] : pos[1]], a0 - pos[0], a1 - pos[0], "pos", p.title))
        if negatives < 1:
            continue
        same = [w for w in wins if not (w[0] < a1 and a0 < w[1])]
        same += [s for s in p.sentences if not (s[0] < a1 and a0 < s[1])]
        same = [w for w in same if not _contains_answer(p.text[w[0] : w[1]], qa)]
        # With one negative per question, half are windows of the same passage, half retrieved.
        want_other = negatives >= 2 or rng.random() < 0.5 or not same
        if same and (negatives >= 2 or not want_other):
            w = rng.choice(same)
            out.append((qa, p.text[w[0] : w[1]], None, None, "same", p.title))
        if not want_other:
            continue
        terms = analyze(qa.question)
        scores = np.asarray(bm.get_scores(terms), dtype=np.float32) if terms else np.zeros(len(pids), np.float32)
        order = [pids[i] for i in np.argsort(-scores, kind="stable")[:6] if pids[i] != qa.passage]
        for other in rng.sample(order[:3], k=min(len(order[:3]), max(1, negatives - 1))):
            o = passages[other]
            qset = set(terms)
            best = max(
                range(len(o.sentences)),
                key=lambda c: len(qset & set(analyze(o.text[o.sentences[c][0] : o.sentences[c][1]]))),
            )
            w = R.window_around(o.sentences, best)
            wt = o.text[w[0] : w[1]]
            if not _contains_answer(wt, qa):
                out.append((qa, wt, None, None, "other", o.title))
    return out


# Cloze questions (``cloze_examples``): a name or a number that recurs in an article is replaced
# by "qui" / "combien" in one sentence (the question); the answer is another occurrence at least
# two sentences away, read in its own window. Capitalised word runs not at a sentence start stand
# in for names; numbers may carry a unit, and are whole (not the 20 of « 20h »).
# Measured (model card, "Method choice"): 10,000 such windows before PIAF cost 1.4 points of calib
# F1 (0.564 against 0.578), so the default stays 0; kept for a better question generator to try.
_CLOZE_NAME = re.compile(r"(?<![\w'’])([A-ZÉÈÀÂÎÔ][\w’'-]+(?:\s+(?:de\s+|du\s+|la\s+|le\s+)?[A-ZÉÈÀÂÎÔ][\w’'-]+)*)")
_CLOZE_NUMBER = re.compile(
    r"(?<![\w.,])(\d[\d\s.,]*\d|\d)(\s?(?:%|euros|millions|milliards|ans|personnes|km|mètres))?(?!\w)"
)


def cloze_examples(folder: Path, n: int, rng: random.Random, log: Callable[[str], None] = print) -> list[Example]:
    """About ``n`` training windows of cloze questions drawn from OrangeSum-like news (``paragraphs.jsonl.gz``:
    ``doc_id``, ``text``), plus a no-answer window of the same article for about half of them.

    Extractive QA needs far more questions than PIAF's 3,086 training ones; these cost nothing and
    teach the same act (find in a window the span a question points at, or none). Articles whose
    headline is an evaluation query (``headlines-valid.jsonl``) are left out.
    """
    import gzip

    from indexer.chunking import split_sentences

    path = folder / "paragraphs.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"--cloze needs {path} (OrangeSum paragraphs); give --cloze-data or --cloze 0")
    held_out: set[str] = set()
    if (folder / "headlines-valid.jsonl").is_file():
        with (folder / "headlines-valid.jsonl").open(encoding="utf-8") as f:
            held_out = {str(json.loads(line)["gold_doc_id"]) for line in f if line.strip()}
    docs: dict[str, list[str]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            if str(p["doc_id"]) not in held_out:
                docs.setdefault(str(p["doc_id"]), []).append(p["text"])
    ids = sorted(docs)
    rng.shuffle(ids)
    out: list[Example] = []
    made = 0
    for d in ids:
        if len(out) >= n:
            break
        text = "\n\n".join(docs[d])
        sents = [(s.start, s.end) for s in split_sentences(text)]
        if len(sents) < 4:
            continue
        occ: dict[str, list[tuple[int, int, int]]] = {}  # span → (sentence, start, end)
        for si, (a, b) in enumerate(sents):
            st = text[a:b]
            for m in list(_CLOZE_NAME.finditer(st)) + list(_CLOZE_NUMBER.finditer(st)):
                if not st[: m.start()].strip(" \"'«“‘-—("):  # a sentence's first word is capitalised, name or not
                    continue
                e = m.group(0).strip()
                if len(e) < 2 or e.lower() in ("le", "la", "les"):
                    continue
                occ.setdefault(e, []).append((si, a + m.start(), a + m.start() + len(m.group(0).rstrip())))
        cands = [(e, o) for e, o in occ.items() if len({si for si, _, _ in o}) >= 2]
        if not cands:
            continue
        e, o = rng.choice(cands)
        q_si, qs, qe = rng.choice(o)
        others = [x for x in o if abs(x[0] - q_si) >= 2]
        if not others:
            continue
        a_si, a0, a1 = rng.choice(others)
        s0, s1 = sents[q_si]
        question = (text[s0:qs] + ("combien" if e[0].isdigit() else "qui") + text[qe:s1]).strip()
        if not question.endswith("?"):
            question = question.rstrip(".!») ") + " ?"
        w0, w1 = R.window_around(sents, a_si)
        if w0 <= s0 < w1 or w0 < s1 <= w1:  # the question's own sentence in the window: no question left
            continue
        qa = QA(f"cloze-{d}", question, d, [(e, a0)])
        out.append((qa, text[w0:w1], a0 - w0, a1 - w0, "pos", ""))
        made += 1
        if rng.random() < 0.5:
            wins = [R.window_around(sents, c) for c in range(len(sents))]
            neg = [w for w in wins if e not in text[w[0] : w[1]]]
            if neg:
                n0, n1 = rng.choice(neg)
                out.append((qa, text[n0:n1], None, None, "same", ""))
    log(f"cloze: {made} questions from {folder.name}, {len(out)} windows")
    return out


def featurize(tokenizer: Any, examples: list[Example], titles: bool = False) -> list[R.Feature]:
    """Token features of the examples, each window after its article's title when ``titles``."""
    feats = []
    for qa, window, a, b, kind, title in examples:
        f = R.label(R.encode(tokenizer, qa.question, window, title if titles else ""), a, b)
        f.meta = {"qid": qa.qid, "kind": kind}
        feats.append(f)
    return feats


def load_base(settings: Any = None) -> tuple[dict[str, Any], Any, str]:
    """The e5 weights (a BertModel state dict), its tokenizer, and the model id Salon records."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from indexer.model import resolve_model
    from indexer.settings import Settings

    info = resolve_model(settings or Settings())
    folder = info.path / "0_Transformer"
    return load_file(str(folder / "model.safetensors")), AutoTokenizer.from_pretrained(str(folder)), info.model_id


def _batches(lengths: list[int], batch: int, rng: random.Random) -> list[list[int]]:
    # Similar lengths together (little padding), batches in random order.
    idx = sorted(range(len(lengths)), key=lambda i: lengths[i] + rng.random() * 8)
    out = [idx[i : i + batch] for i in range(0, len(idx), batch)]
    rng.shuffle(out)
    return out


def _question_batches(feats: list[R.Feature], batch: int, rng: random.Random) -> list[list[int]]:
    # Every window of a question in the same batch (``shared_norm_loss`` compares them), questions
    # of similar lengths together, batches of about ``batch`` windows in random order.
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(feats):
        groups.setdefault(str(f.meta.get("qid", i)), []).append(i)
    order = sorted(groups.values(), key=lambda g: max(len(feats[i].ids) for i in g) + rng.random() * 8)
    out: list[list[int]] = []
    cur: list[int] = []
    for g in order:
        if cur and len(cur) + len(g) > batch:
            out.append(cur)
            cur = []
        cur += g
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def shared_norm_loss(start: Any, end: Any, feats: list[R.Feature]) -> Any:
    """Shared normalisation (Clark & Gardner 2018) over each question's windows, on the scale
    search compares windows with: a position's score less its window's no-answer score.

    Per question, start and end each: −log of (Σ e^margin over the gold positions of all its
    windows, or 1 if none holds the answer) over (1 + Σ e^margin over every window position of
    all its windows). The per-window loss teaches each window to answer or abstain on its own,
    never whether its best span beats another window's; search picks across windows by that
    margin, and picking by hindsight the best of a gold passage's windows would give calib F1
    0.716 against 0.589 (docs/quality.md, round 8).
    """
    import torch

    width = start.shape[1]
    ctx = torch.zeros((len(feats), width), dtype=torch.bool)
    for r, f in enumerate(feats):
        ctx[r, f.ctx_start : f.ctx_start + len(f.offsets)] = True
    groups: dict[str, list[int]] = {}
    for r, f in enumerate(feats):
        groups.setdefault(str(f.meta.get("qid", r)), []).append(r)
    zero = torch.zeros(1)
    losses = []
    for rows in groups.values():
        for logits, gold in ((start, [feats[r].start_label for r in rows]), (end, [feats[r].end_label for r in rows])):
            m = logits[rows].float() - logits[rows, :1].float()
            every = torch.logsumexp(torch.cat([zero, m[ctx[rows]]]), 0)
            held = [m[k, g] for k, g in enumerate(gold) if g > 0]
            losses.append(every - (torch.logsumexp(torch.stack(held), 0) if held else 0.0))
    return torch.stack(losses).mean()


def train(
    net: Any,
    epoch_feats: Callable[[int], list[R.Feature]],
    train_layers: int = 12,
    epochs: int = 3,
    batch: int = 32,
    lr: float = 2.5e-4,
    head_lr: float = 1e-3,
    layer_decay: float = 0.85,
    seed: int = 13,
    bf16: bool = True,
    max_steps: int | None = None,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int], float] | None = None,
    average_last: int = 1,
    distil: float = 0.0,
    temperature: float = 2.0,
    shared_norm: float = 0.0,
) -> list[float]:
    """Fine-tune the top ``train_layers`` layers and the head; returns the loss of every step.

    ``epoch_feats(e)`` gives epoch ``e``'s windows (drawn afresh each epoch: another window around
    the answer, other negatives), so a small question set is not memorised window by window.
    Lower layers learn slower than upper ones (``layer_decay`` per layer down), the usual remedy
    for fine-tuning on few examples. If ``on_epoch`` returns a validation score, the best
    epoch's weights are kept (early stopping without a second run) — unless ``average_last`` > 1:
    then the result is the mean of the last ``average_last`` epochs' weights. Epochs 3–5 score
    0.558, 0.570, 0.566 on 200 calib questions, differences that size of sample cannot tell apart,
    while on all 725 their mean beats epochs 4 and 5 (model card, "Method choice").
    """
    import contextlib

    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    n_layers = len(net.layers)
    first = n_layers - train_layers
    for name, p in net.named_parameters():
        p.requires_grad_(name.startswith("qa.") or any(name.startswith(f"layers.{i}.") for i in range(first, n_layers)))
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    groups: list[dict[str, Any]] = [{"params": list(net.qa.parameters()), "lr": head_lr}]
    for i in range(first, n_layers):
        groups.append({"params": list(net.layers[i].parameters()), "lr": lr * layer_decay ** (n_layers - 1 - i)})
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    feats = epoch_feats(0)
    per_epoch = math.ceil(len(feats) / batch)
    total = max_steps or max(1, per_epoch * epochs)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm))
    )
    losses: list[float] = []
    step = epoch = seen = 0
    best: tuple[float, dict[str, Any]] | None = None
    mean: dict[str, Any] = {}
    averaged = 0

    def trained_state() -> dict[str, Any]:
        # the embeddings are never trained: no copy of them
        return {
            k: v.detach().float().clone()
            for k, v in net.state_dict().items()
            if not k.startswith(("word.", "pos.", "ttype.", "eln."))
        }

    t0 = time.perf_counter()
    while step < total:
        if epoch > 0:
            feats = epoch_feats(epoch)
        lengths = [len(f.ids) for f in feats]
        net.train()
        # with shared normalisation, a question's windows share a batch
        for idx in _question_batches(feats, batch, rng) if shared_norm > 0 else _batches(lengths, batch, rng):
            if step >= total:
                break
            ids_np, mask_np = R.pad([feats[i] for i in idx])
            ids, mask = torch.from_numpy(ids_np), torch.from_numpy(mask_np)
            ys = torch.tensor([feats[i].start_label for i in idx])
            ye = torch.tensor([feats[i].end_label for i in idx])
            with amp():
                if first > 0:
                    with torch.no_grad():
                        x = net.lower(ids, mask, first)
                else:
                    x = net.lower(ids, mask, 0)
                s, e = net.upper(x, mask, first)
            loss = (
                torch.nn.functional.cross_entropy(s.float(), ys) + torch.nn.functional.cross_entropy(e.float(), ye)
            ) / 2
            if shared_norm > 0:
                loss = loss + shared_norm * shared_norm_loss(s, e, [feats[i] for i in idx])
            # a batch without the teacher's scores (the first epoch of --self-distil) learns the answers alone
            if distil > 0 and all("teacher" in feats[i].meta for i in idx):
                ts, te = _teacher_batch([feats[i] for i in idx], ids.shape[1])
                loss = (1 - distil) * loss + distil * (_soft_ce(s, ts, temperature) + _soft_ce(e, te, temperature)) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in groups for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            step += 1
            seen += int(mask.sum())
            if step % 25 == 0 or step == total:
                el = time.perf_counter() - t0
                log(
                    f"step {step}/{total} loss {np.mean(losses[-25:]):.3f} "
                    f"({seen / el:.0f} tokens/s, {el / 60:.1f} min)"
                )
        epoch += 1
        net.eval()
        if average_last > 1 and epoch > epochs - average_last:
            averaged += 1
            for k, v in trained_state().items():  # running mean, one copy of the weights held
                mean[k] = v if k not in mean else mean[k] + (v - mean[k]) / averaged
        if on_epoch is not None:
            score = on_epoch(epoch)
            if average_last <= 1 and (best is None or score > best[0]):
                best = (score, trained_state())
                log(f"epoch {epoch} is the best so far ({score:.4f})")
    if mean:
        net.load_state_dict(mean, strict=False)
        log(f"weights: the mean of the last {averaged} epochs")
    elif best is not None:
        net.load_state_dict(best[1], strict=False)
    net.eval()
    return losses


def _teacher_batch(feats: list[R.Feature], width: int) -> tuple[Any, Any]:
    """The teacher's start/end logits of a batch (``Feature.meta['teacher']``), padded as the student's."""
    import torch

    ts = torch.full((len(feats), width), -1e4)
    te = torch.full((len(feats), width), -1e4)
    for r, f in enumerate(feats):
        a, b = f.meta["teacher"]
        ts[r, : len(a)], te[r, : len(b)] = torch.from_numpy(a), torch.from_numpy(b)
    return ts, te


def _soft_ce(student: Any, teacher: Any, t: float) -> Any:
    """KL(teacher ‖ student) at temperature ``t``, scaled by t² (gradients comparable to the hard loss)."""
    import torch

    p = torch.softmax(teacher / t, dim=-1)
    kl = (p * (torch.log_softmax(teacher / t, dim=-1) - torch.log_softmax(student.float() / t, dim=-1))).sum(-1)
    return kl.mean() * t * t


def add_teacher_logits(teacher: R.Reader, feats: list[R.Feature], batch: int = 32) -> None:
    """Store the teacher's logits in every feature (``meta['teacher']``), read in length-sorted batches."""
    order = sorted(range(len(feats)), key=lambda i: len(feats[i].ids))
    for k in range(0, len(order), batch):
        chunk = [feats[i] for i in order[k : k + batch]]
        s, e = teacher.logits(chunk)
        for r, f in enumerate(chunk):
            n = len(f.ids)
            f.meta["teacher"] = (s[r, :n].astype(np.float32), e[r, :n].astype(np.float32))


# -- evaluation on gold passages -----------------------------------------------------------------


def gold_passage_eval(
    reader: R.Reader, passages: dict[str, Passage], qas: list[QA], centred: bool = True
) -> dict[str, float]:
    """Reader alone: the best span of the gold passage (``evaluate.gold_passage_scores``)."""
    reads: list[GoldRead] = []
    for qa in qas:
        p = passages[qa.passage]
        reads.append((qa.question, p.text, p.sentences, p.title, [a for a, _ in qa.answers]))
    em, f1 = gold_passage_scores(reader, reads, centred)
    return {"em": round(em, 4), "f1": round(f1, 4), "questions": len(qas)}


def write_calibration(cal: dict[str, Any], fitted_on: str, artifact_dir: Path = R.ARTIFACT_DIR) -> Path:
    """Store a refitted confidence in the reader's metadata (the weights, and their sha256, stay)."""
    meta = R.read_meta(artifact_dir)  # refuse to annotate a damaged artifact
    meta["calibration"] = {**cal, "fitted_on": fitted_on}
    # reader.json alone changes and the sha256 it records stays true: one atomic rename suffices
    path = artifact_dir / R.META
    write_atomic(path, _dumps(meta))
    return path


def borrowed_calibration(artifact_dir: Path) -> dict[str, Any]:
    """The fitted answer confidence of another reader artifact, saying whose readings it was fitted on.

    Cross-fitting: a reader trained on train + calib has no unseen calib questions left to fit its
    confidence on, so it takes the one fitted on the calib readings of the same recipe trained on
    train alone (those readings are of articles that reader never saw, as search's are)."""
    meta = R.read_meta(artifact_dir)  # refuses a damaged artifact
    cal = meta.get("calibration") or {}
    if not cal.get("weights"):
        raise R.ReaderError(f"{artifact_dir} holds no fitted answer confidence to take")
    origin = str(cal.get("fitted_on", "calib"))
    if "readings of" not in origin:
        trained = ", ".join(meta.get("trained_on", ["train"]))
        origin = f"{origin} readings of reader {str(meta['sha256'])[:16]}… (trained on {trained})"
    return {**cal, "fitted_on": origin}


# The artifact's two files change together: reader.json records the sha256 of reader.safetensors,
# and the loader refuses a pair that disagrees. Replacing one file, then the other, would leave
# such a pair after a crash between the two renames, whatever their order. So an artifact is
# changed as a copy of its folder (``files.staged_folder``), which then takes the folder's place in
# one step: a crash leaves the old artifact or the new one, each whole.


def save_artifact(
    net: Any,
    base: dict[str, Any],
    train_layers: int,
    meta: dict[str, Any],
    dest: Path,
    smoothing_from: tuple[dict[str, Any], Any, str] | None = None,
) -> dict[str, Any]:
    """Write the packed weights (``reader.pack``) and their metadata, sha256 included; with
    ``smoothing_from`` (e5's BertModel state, tokenizer, model id), the int8 export's smoothing
    factors too (``store_smoothing``)."""
    packed = R.pack(net.state_dict(), base, train_layers, len(net.layers))
    meta = {**meta, "format": R.FORMAT, "sha256": "", "trained_layers": train_layers, "depth": len(net.layers)}
    with staged_folder(dest) as stage:
        meta = _write_artifact(stage, packed, meta)
        if smoothing_from is not None:
            meta = _add_smoothing(stage, *smoothing_from)
    return meta


def store_smoothing(dest: Path, bert_state: dict[str, Any], tokenizer: Any, model_id: str) -> str:
    """Measure the int8 export's smoothing factors (``reader.smoothing_factors``) on the weights
    as they ship (int8 deltas unpacked, as search loads them) and store them in the artifact's
    weights file, so that every machine exports the same int8 reader; returns the new sha256.
    """
    with staged_folder(dest) as stage:
        meta = _add_smoothing(stage, bert_state, tokenizer, model_id)
    return str(meta["sha256"])


def _add_smoothing(folder: Path, bert_state: dict[str, Any], tokenizer: Any, model_id: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    reader = R.Reader.load(bert_state, tokenizer, model_id, folder)  # refuses a damaged artifact
    packed = load_file(str(folder / R.WEIGHTS))
    packed[R.SMOOTHING] = R.smoothing_factors(reader.net, tokenizer)
    return _write_artifact(folder, packed, reader.meta)


def _write_artifact(folder: Path, packed: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """The weights and their metadata, written in place: ``folder`` is a staged copy."""
    from safetensors.torch import save_file

    save_file(packed, str(folder / R.WEIGHTS), metadata={"format": R.FORMAT})
    meta = {**meta, "sha256": sha256_file(folder / R.WEIGHTS)}
    (folder / R.META).write_text(_dumps(meta), encoding="utf-8")
    return meta


def _dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, nargs="?", help="PIAF-like folder (passages.jsonl + questions.jsonl)")
    ap.add_argument("--out", type=Path, default=R.ARTIFACT_DIR)
    ap.add_argument(
        "--depth", type=int, default=12, help="encoder layers kept, the bottom ones of e5's 12 (fewer: faster reads)"
    )
    ap.add_argument("--layers", type=int, default=None, help="top encoder layers fine-tuned (default: all kept)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument(
        "--average-last",
        type=int,
        default=3,
        help="ship the mean of the last N epochs' weights (1: the best epoch on the calib questions)",
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2.5e-4, help="learning rate of the top layer")
    ap.add_argument(
        "--layer-decay",
        type=float,
        default=0.85,
        help="learning-rate factor per layer down (0.95 measured: calib F1 0.558 against 0.584)",
    )
    ap.add_argument(
        "--negatives",
        type=int,
        default=1,
        help="no-answer windows per question (1: same passage or retrieved, at random)",
    )
    ap.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="a trained reader artifact whose span scores the new one also learns (distillation)",
    )
    ap.add_argument(
        "--self-distil",
        action="store_true",
        help="from the second epoch on, also learn the span scores of the weights as they were after the "
        "previous epoch (read from --checkpoints in int8 ONNX): a teacher within one training",
    )
    ap.add_argument(
        "--distil", type=float, default=0.5, help="weight of the teacher's loss (with --teacher or --self-distil)"
    )
    ap.add_argument(
        "--cloze",
        type=int,
        default=0,
        help="windows of cloze questions from OrangeSum read in one epoch before PIAF (0: none; 10000 measured: "
        "calib F1 0.564 against 0.578 without)",
    )
    ap.add_argument(
        "--cloze-data", type=Path, default=None, help="OrangeSum folder for --cloze (default: beside the data)"
    )
    ap.add_argument(
        "--titles",
        action="store_true",
        help="read each window after its article's title (measured: calib F1 0.553 against 0.578 without)",
    )
    ap.add_argument(
        "--shared-norm",
        type=float,
        default=0.0,
        help="weight of a loss comparing each question's windows by margin over no-answer (shared normalisation; "
        "0: off; 1.0 measured: calib F1 0.584, as without)",
    )
    ap.add_argument(
        "--train-splits",
        default="train",
        help="splits whose articles are trained on, comma-separated: train, or train,calib (then no calib figure "
        "is measured, and the confidence is fitted on the calib readings of a reader trained on train alone)",
    )
    ap.add_argument(
        "--calibration-from",
        type=Path,
        default=None,
        help="a reader artifact whose fitted answer confidence the new one takes (with --train-splits train,calib: "
        "the one trained on train alone, fitted on its calib readings); without a data folder, only copy it into --out",
    )
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="train on the first N training questions")
    ap.add_argument("--eval-limit", type=int, default=200, help="calib questions read after each epoch (best kept)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--checkpoints", type=Path, default=None, help="also save the artifact after every epoch here")
    ap.add_argument(
        "--store-smoothing",
        action="store_true",
        help="only store the int8 smoothing factors in the artifact at --out (one trained before they were stored)",
    )
    args = ap.parse_args(argv)
    if args.store_smoothing:
        try:
            sha = store_smoothing(args.out, *load_base())
        except R.ReaderError as exc:
            sys.exit(f"salon: {exc}")
        print(f"stored the int8 smoothing factors in {args.out / R.WEIGHTS} (sha256 {sha[:16]}…)")
        return
    borrowed = None
    if args.calibration_from:
        try:
            borrowed = borrowed_calibration(args.calibration_from)
        except R.ReaderError as exc:
            sys.exit(f"salon: {exc}")
        if args.data is None:
            where = write_calibration(borrowed, borrowed["fitted_on"], args.out)
            print(f"copied the answer confidence of {args.calibration_from} to {where}")
            return
    if args.data is None:
        ap.error("the PIAF-like data folder is required (e.g. ../shared/eval/piaf-dev)")
    if args.self_distil and (args.teacher or not args.checkpoints):
        ap.error("--self-distil needs --checkpoints (the previous epoch's weights are read there) and no --teacher")
    if not 1 <= args.depth <= 12:
        ap.error(f"--depth must be between 1 and 12 (e5-small has 12 layers), not {args.depth}")
    args.layers = args.depth if args.layers is None else args.layers
    train_splits = tuple(dict.fromkeys(x.strip() for x in args.train_splits.split(",") if x.strip()))
    if "train" not in train_splits or not set(train_splits) <= {"train", "calib"}:
        # test articles are never trained on: every published figure is read there
        ap.error(f"--train-splits must be train or train,calib, not {args.train_splits!r}")
    if not 0 <= args.layers <= args.depth:
        ap.error(f"--layers must be between 0 and --depth ({args.depth}), not {args.layers}")

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.0f} s] {msg}", file=sys.stderr, flush=True)

    passages, qas = load_piaf(args.data)
    by_split: dict[str, list[QA]] = {k: [] for k in SPLITS}
    for qa in qas:
        by_split[split_of(passages[qa.passage].title)].append(qa)
    log("questions per split: " + ", ".join(f"{k} {len(v)}" for k, v in by_split.items()))
    train_qas = [qa for k in train_splits for qa in by_split[k]]
    log(
        f"trained on {', '.join(train_splits)}: {len(train_qas)} questions"
        + (f", the first {args.limit}" if args.limit else "")
    )
    train_qas = train_qas[: args.limit] if args.limit else train_qas
    state, tokenizer, model_id = load_base()
    base = R.from_bert_state(state, args.depth)
    kinds: dict[str, int] = {}
    teacher = None
    if args.teacher:
        from indexer.model import onnx_dir
        from indexer.settings import Settings

        # int8 ONNX, as search runs it: ~1.5 min a training epoch on 2 cores instead of ~4 in PyTorch
        teacher = R.Reader.load(state, tokenizer, model_id, args.teacher, onnx_dir(Settings()), True)
        log(f"teacher: {args.teacher} (depth {teacher.meta.get('depth', 12)}, {teacher.runtime})")

    def epoch_feats(epoch: int) -> list[R.Feature]:
        feats = featurize(
            tokenizer,
            make_examples(passages, train_qas, random.Random(args.seed * 1000 + epoch), args.negatives),
            args.titles,
        )
        kinds.update({k: sum(1 for f in feats if f.meta["kind"] == k) for k in ("pos", "same", "other")})
        log(f"epoch {epoch + 1}: {len(feats)} training windows {kinds}, {sum(len(f.ids) for f in feats)} tokens")
        if teacher is not None:
            add_teacher_logits(teacher, feats)
            log(f"epoch {epoch + 1}: teacher logits read")
        elif args.self_distil and epoch > 0:
            # the previous epoch's checkpoint, saved by on_epoch just before this epoch starts
            past = R.Reader.load(
                state, tokenizer, model_id, args.checkpoints / f"epoch-{epoch}", args.checkpoints / "onnx", True
            )
            add_teacher_logits(past, feats)
            log(f"epoch {epoch + 1}: span scores of epoch {epoch}'s weights read ({past.runtime})")
        return feats

    net = R.build_net(n_layers=args.depth)
    net.load_state_dict(base, strict=False)
    reader = R.Reader(net, tokenizer, {"calibration": {}, "titles": args.titles})
    bf16 = torch.backends.mkldnn.is_available()
    reader.bf16 = bf16
    # a split trained on reads no figure: the epochs are then not scored
    calib = [] if "calib" in train_splits else by_split["calib"][: args.eval_limit]
    history: list[dict[str, Any]] = []
    cloze: dict[str, Any] = {}
    # the recipe's optimisation, the same for the cloze stage and for PIAF's epochs
    fit = functools.partial(
        train,
        net,
        train_layers=args.layers,
        batch=args.batch,
        lr=args.lr,
        layer_decay=args.layer_decay,
        seed=args.seed,
        bf16=bf16,
        max_steps=args.max_steps,
        log=log,
    )
    if args.cloze > 0:
        folder = args.cloze_data or args.data.parent / "orangesum"
        cfeats = featurize(tokenizer, cloze_examples(folder, args.cloze, random.Random(args.seed), log))
        # one epoch with its own warm-up and decay: PIAF's schedule then starts afresh
        fit(lambda _e: cfeats, epochs=1)
        cloze = {"windows": len(cfeats), "calib_after": gold_passage_eval(reader, passages, calib) if calib else None}
        log(f"after the cloze stage: calib (gold passage, {len(calib)} questions) {cloze['calib_after']}")

    def on_epoch(epoch: int) -> float:
        m = gold_passage_eval(reader, passages, calib)
        history.append({"epoch": epoch, **m})
        log(f"epoch {epoch}: calib (gold passage, {len(calib)} questions) {m}")
        if args.checkpoints:
            save_artifact(
                net,
                base,
                args.layers,
                {"base_model_id": model_id, "epoch": epoch},
                args.checkpoints / f"epoch-{epoch}",
                (state, tokenizer, model_id),
            )
        return m["f1"]

    losses = fit(
        epoch_feats,
        epochs=args.epochs,
        on_epoch=on_epoch if calib else None,
        average_last=args.average_last,
        distil=args.distil if teacher is not None or args.self_distil else 0.0,
        shared_norm=args.shared_norm,
    )
    log(f"loss first 20 steps {np.mean(losses[:20]):.3f} → last 20 {np.mean(losses[-20:]):.3f}")
    if args.no_save:
        return
    metrics = {k: gold_passage_eval(reader, passages, by_split[k]) for k in ("calib", "test") if k not in train_splits}
    log(f"gold-passage reader: {metrics}")
    meta = {
        "base_model_id": model_id,
        "data": "PIAF dev (../shared/eval/piaf-dev, MIT, DINUM/Etalab)"
        + (", after cloze questions from OrangeSum paragraphs (../shared/eval/orangesum, CC BY-SA)" if cloze else ""),
        "split": "sha256(title) % 100: train < 75 ≤ calib < 85 ≤ test",
        "trained_on": list(train_splits),
        # the flags that shape the weights and differ from the defaults (not where files go)
        "command": " ".join(
            ["python -m training.reader_train ../shared/eval/piaf-dev"]
            + [
                f"--{k.replace('_', '-')} {v}"
                for k, v in vars(args).items()
                if k not in ("data", "out", "no_save", "checkpoints", "threads", "store_smoothing")
                and v != ap.get_default(k)
                and not (k == "layers" and v == args.depth)
            ]
        ),
        "hyperparameters": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("data", "out", "no_save", "checkpoints", "store_smoothing")
        },
        "titles": args.titles,
        "training_windows": kinds,
        **({"cloze": cloze} if cloze else {}),
        "training_seconds": round(time.perf_counter() - t_start),
        "epochs": history,
        **({"teacher": {"path": str(args.teacher), "sha256": teacher.meta["sha256"]}} if teacher else {}),
        "gold_passage": metrics,
        "calibration": borrowed or {},
    }
    meta = save_artifact(net, base, args.layers, meta, args.out, (state, tokenizer, model_id))
    size = (args.out / R.WEIGHTS).stat().st_size / 1e6
    log(f"wrote {args.out / R.WEIGHTS} ({size:.1f} MB, sha256 {str(meta['sha256'])[:16]}…)")


if __name__ == "__main__":
    main()

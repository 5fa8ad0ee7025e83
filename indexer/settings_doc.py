"""The settings page (docs/configuration.md) written from the settings object itself, so the
page can neither miss a setting nor name one that is gone (cog regenerates it; a test checks)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from indexer.settings import Settings


def _default(name: str, field: Any) -> str:
    if name == "cache_dir":  # a default_factory: say what it reads rather than this machine's path
        return "`$XDG_CACHE_HOME/salon`, else `~/.cache/salon`"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return f"`{value}`"


def settings_table() -> str:
    """A Markdown table: environment variable, default, meaning, one row per setting."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        text = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | {_default(name, field)} | {text} |")
    return "\n".join(rows) + "\n"

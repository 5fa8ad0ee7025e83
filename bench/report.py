"""What every benchmark does with its figures: percentiles, a Markdown table on stdout, JSON on disk.

Imported by the scripts beside it (a script's own folder is on ``sys.path`` when it runs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def pct(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``xs`` (NaN for none)."""
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else float("nan")


def p50_95_99(xs: Sequence[float]) -> list[float]:
    return [round(pct(xs, p), 1) for p in (50, 95, 99)]


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, as the docs show it."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, data: Any) -> None:
    """Write ``data`` to ``path`` (folders made; nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    print(f"wrote {path}")

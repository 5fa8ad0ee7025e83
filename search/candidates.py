"""A passage while a search ranks it: what retrieval, rescoring and the answer step know of it.

Its own module so that the engine and the answer step both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.store import ChunkInfo, Sentences
from search.types import Scores


@dataclass
class Candidate:
    row: int
    scores: Scores
    best_sentence: int = -1
    features: np.ndarray | None = None
    chunk: ChunkInfo | None = None  # filled from the store for the candidates a search keeps
    best_span: tuple[int, int] = (0, 0)  # article offsets of the best sentence
    sentences: Sentences | None = None
    # rescored candidates: (second-stage score, its lead over the best candidate of another article)
    evidence: tuple[float, float] | None = None

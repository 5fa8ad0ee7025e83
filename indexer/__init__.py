"""Salon indexer: turns articles into an index on disk (corpus, chunks, embeddings, FAISS)."""

__version__ = "0.1.0"

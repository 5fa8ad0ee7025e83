"""Salon search: opens an index once and answers queries (retrieval, fusion, answers, highlights)."""

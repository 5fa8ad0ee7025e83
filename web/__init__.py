"""Salon web: a thin FastAPI + Jinja2 shell over the search engine."""

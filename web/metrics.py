"""GET /metrics: Salon's operation in the Prometheus text format (prometheus_client).

Requests and latency by route template and status (never by raw path: one series per route),
searches and questions, answers by status; and, read from the server's state at each scrape,
the served generation and its age, the write tasks by state, the live segment and merges.
Each app has its own registry, so two apps in one process (tests) never share counts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

# Latency buckets in seconds: searches take milliseconds, questions tens of them, writes more.
BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StateCollector(Collector):
    """Gauges read from the server's state when Prometheus scrapes (``state()`` gives it)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        st = self.state()
        if st is None:
            return
        engine = st.engine
        up = GaugeMetricFamily("salon_index_served", "1 when an index generation is served")
        up.add_metric([], 1.0 if engine is not None else 0.0)
        yield up
        if engine is not None:
            m = engine.manifest
            info = InfoMetricFamily("salon_generation", "The served index generation")
            info.add_metric([], {"generation": engine.generation.name, "model": m.model_id})
            yield info
            age = GaugeMetricFamily("salon_generation_age_seconds", "Seconds since the served generation was built")
            try:
                age.add_metric([], max(0.0, time.time() - datetime.fromisoformat(m.built_at).timestamp()))
            except ValueError:
                age.add_metric([], float("nan"))
            yield age
            build = GaugeMetricFamily("salon_generation_build_seconds", "How long the served generation took to build")
            build.add_metric([], float(m.build_seconds))
            yield build
            counts = GaugeMetricFamily("salon_index_size", "What the served index holds", labels=["what"])
            for k in ("articles", "chunks", "sentences", "entities"):
                if k in m.counts:
                    counts.add_metric([k], float(m.counts[k]))
            yield counts
        writer = st.writer
        enabled = GaugeMetricFamily("salon_writes_enabled", "1 when the write routes are on")
        enabled.add_metric([], 1.0 if writer is not None else 0.0)
        yield enabled
        if writer is None:
            return
        tasks = GaugeMetricFamily("salon_write_tasks", "Write tasks by state", labels=["state"])
        by_state = writer.archive.counts()
        for s in ("enqueued", "indexed", "failed"):
            tasks.add_metric([s], float(by_state.get(s, 0)))
        yield tasks
        seg = writer.segment
        live = GaugeMetricFamily("salon_live_segment", "The live segment", labels=["what"])
        live.add_metric(["articles"], float(seg.live_articles))
        live.add_metric(["deletes"], float(seg.live_deletes))
        live.add_metric(["chunks"], float(seg.n_chunks))
        live.add_metric(["pending_writes"], float(writer.pending()))
        yield live
        merges = CounterMetricFamily("salon_merges", "Merges of the live segment into a new generation")
        merges.add_metric([], float(st.merges))
        yield merges
        last = GaugeMetricFamily("salon_last_merge_seconds", "How long the last merge took")
        last.add_metric([], float(st.last_merge_seconds))
        yield last
        batch = GaugeMetricFamily("salon_last_write_batch_seconds", "How long the writer's last batch took to index")
        batch.add_metric([], float(writer.last_seconds))
        yield batch


class Metrics:
    """The app's registry and the counters its middleware and routes update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "salon_http_requests", "HTTP requests by route and status", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "salon_http_request_seconds", "HTTP request latency", ["method", "route"], buckets=BUCKETS, registry=r
        )
        self.searches = Counter("salon_searches", "Searches by kind (question or keywords)", ["kind"], registry=r)
        self.answers = Counter("salon_answers", "Answer step outcomes of questions", ["status"], registry=r)

    def watch(self, state: Any) -> None:
        """Add the gauges read from the server's state (``state()`` returns it, or None)."""
        self.registry.register(StateCollector(state))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

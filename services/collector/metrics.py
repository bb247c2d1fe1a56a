"""Collector metrics (namespace `collector`), registered on a registry given by the app factory."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.web.instrumentation import HttpMetrics


class CollectorMetrics:
    """Every time series the collector exports; label values come from small fixed sets."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http = HttpMetrics("collector", registry)
        self.events_accepted = Counter(
            "events_accepted",
            "Events acknowledged with 202, by event type.",
            ["event_type"],
            namespace="collector",
            registry=registry,
        )
        self.events_rejected = Counter(
            "events_rejected",
            "Events refused, by event type and reason.",
            ["event_type", "reason"],
            namespace="collector",
            registry=registry,
        )
        self.publish_duration = Histogram(
            "kafka_publish_duration_seconds",
            "Time from first send to the last broker ack of a request.",
            namespace="collector",
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.publish_errors = Counter(
            "kafka_publish_errors",
            "Publishes that failed, by error type.",
            ["error_type"],
            namespace="collector",
            registry=registry,
        )
        self.kafka_up = Gauge(
            "kafka_up",
            "1 while the broker answers a metadata round trip for the events topic, else 0 "
            "(probed every kafka_probe_s and on each GET /readyz).",
            namespace="collector",
            registry=registry,
        )
        self.kafka_topics_below_settings = Gauge(
            "kafka_topics_below_settings",
            "1 while the last check found a topic with a lower replication factor or min.insync.replicas "
            "than the settings (the collector then spools and is not ready), else 0.",
            namespace="collector",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "spool_bytes",
            "Bytes in the local spool waiting to be forwarded to Kafka.",
            namespace="collector",
            registry=registry,
        )
        self.spool_events = Gauge(
            "spool_events",
            "Events in the local spool waiting to be forwarded to Kafka.",
            namespace="collector",
            registry=registry,
        )
        self.spool_oldest_age = Gauge(
            "spool_oldest_age_seconds",
            "Age of the oldest spooled record not yet forwarded (0 when empty).",
            namespace="collector",
            registry=registry,
        )
        self.spooled_events = Counter(
            "spooled_events",
            "Events acknowledged from the local spool because Kafka could not take them.",
            namespace="collector",
            registry=registry,
        )
        self.forwarded_events = Counter(
            "spool_forwarded_events",
            "Spooled events forwarded to Kafka.",
            namespace="collector",
            registry=registry,
        )
        self.forwarder_restarts = Counter(
            "spool_forwarder_restarts",
            "Times the spool forwarder failed and was restarted (see the collector's log).",
            namespace="collector",
            registry=registry,
        )
        self.spool_damaged_bytes = Counter(
            "spool_damaged_bytes",
            "Spool bytes that were no readable frame: a torn tail cut off at start (never "
            "acknowledged), or unreadable bytes set aside while forwarding (acknowledged data lost by the disk).",
            ["kind"],
            namespace="collector",
            registry=registry,
        )
        self.producer_resets = Counter(
            "kafka_producer_resets",
            "Times the Kafka producer was replaced because it could no longer deliver, by reason.",
            ["reason"],
            namespace="collector",
            registry=registry,
        )

"""Aggregator metrics (namespace `aggregator`), registered on a registry given by the app factory."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.aggregator.quality import QualityGauges
from services.web.instrumentation import HttpMetrics


class AggregatorMetrics:
    """Every time series the aggregator exports; labels come from small fixed sets."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.http = HttpMetrics("aggregator", registry)
        self.events_applied = Counter(
            "events_applied",
            "New events written to the raw tables and rollups, by event type.",
            ["event_type"],
            namespace="aggregator",
            registry=registry,
        )
        self.events_duplicate = Counter(
            "events_duplicate",
            "Events whose (org_code, event_id) was already counted.",
            namespace="aggregator",
            registry=registry,
        )
        self.records_stale = Counter(
            "events_stale",
            "Events skipped because their offsets were already applied (redelivery).",
            namespace="aggregator",
            registry=registry,
        )
        self.dead_letters = Counter(
            "dead_letters",
            "Records or events sent to the dead-letter topic, by reason.",
            ["reason"],
            namespace="aggregator",
            registry=registry,
        )
        self.offset_resets = Counter(
            "offset_resets",
            "Partitions whose stored offset was not in the broker's log and were read again from its start, by reason.",
            ["reason"],
            namespace="aggregator",
            registry=registry,
        )
        self.batch_events = Histogram(
            "batch_events",
            "Events per applied batch.",
            namespace="aggregator",
            registry=registry,
            buckets=(1, 10, 100, 1000, 5000, 10000, 50000, 100000),
        )
        self.db_write_duration = Histogram(
            "db_write_duration_seconds",
            "Time of one batch's database transaction.",
            namespace="aggregator",
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.db_errors = Counter(
            "db_errors",
            "Batch transactions that failed and will be retried, by error type.",
            ["error_type"],
            namespace="aggregator",
            registry=registry,
        )
        self.kafka_client_restarts = Counter(
            "kafka_client_restarts",
            "Kafka clients that failed for good and were replaced by new ones.",
            namespace="aggregator",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_records",
            "Records between the partition's end and the next offset to apply.",
            ["partition"],
            namespace="aggregator",
            registry=registry,
        )
        self.kafka_topics_below_settings = Gauge(
            "kafka_topics_below_settings",
            "1 while the last check found a topic with a lower replication factor or min.insync.replicas "
            "than the settings (the aggregator then consumes but is not ready), else 0.",
            namespace="aggregator",
            registry=registry,
        )
        # The data-quality gauges per institution (services/aggregator/quality.py) and
        # the health of the task that refreshes them.
        self.quality = QualityGauges(registry)
        self.quality_refresh_duration = Histogram(
            "quality_refresh_duration_seconds",
            "Time to read the data-quality figures from the database.",
            namespace="aggregator",
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
        )
        self.quality_refresh_errors = Counter(
            "quality_refresh_errors",
            "Refreshes of the data-quality gauges that failed (the previous values stay), by error type.",
            ["error_type"],
            namespace="aggregator",
            registry=registry,
        )
        # Closed months that changed after their close (services/aggregator/restated.py): one
        # series per closed, not yet archived month (about 14 with the default horizon).
        self.restated_cells = Gauge(
            "restated_cells",
            "Cells of a closed month's reports whose value now differs from the frozen one, by month (YYYY-MM).",
            ["month"],
            namespace="aggregator",
            registry=registry,
        )
        self.closed_month_late_events = Gauge(
            "closed_month_late_events",
            "Events counting in a closed month that were received after its cutoff, by month (YYYY-MM).",
            ["month"],
            namespace="aggregator",
            registry=registry,
        )
        self.restatements_refresh_errors = Counter(
            "restatements_refresh_errors",
            "Refreshes of the restatement gauges that failed (the previous values stay), by error type.",
            ["error_type"],
            namespace="aggregator",
            registry=registry,
        )
        self.quality_last_refresh = Gauge(
            "quality_last_refresh_timestamp_seconds",
            "When the data-quality gauges were last refreshed (0 = not yet).",
            namespace="aggregator",
            registry=registry,
        )

"""Prometheus metrics on a listener of their own, apart from the API that institutions reach.

The aggregator's registry carries per-institution figures (upload days, coverage, ...) for the
data-quality alerts: on the report API's port anyone who can reach it would read every
institution's figures without a token. A separate listener can be bound to an internal address
(and left out of the ingress) while the API is exposed. prometheus_client's own server runs
in a thread of its own, so a slow event loop never delays a scrape.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server


@dataclass
class MetricsListener:
    """A running metrics listener."""

    host: str
    port: int
    _server: WSGIServer
    _thread: Thread

    @property
    def url(self) -> str:
        """Base URL; the metrics are at `/metrics` (and at `/`)."""
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_listener(registry: CollectorRegistry, host: str, port: int) -> MetricsListener:
    """Serve `registry` on host:port (port 0: any free port) until `stop()`."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsListener(host, int(server.server_port), server, thread)

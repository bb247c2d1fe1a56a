"""Run a service's app under uvicorn with the platform's logging."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve until SIGTERM/SIGINT; in-flight requests get 30 s to finish."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        # uvicorn's X-Forwarded-* rewriting is one more ASGI layer on every request; nothing
        # here reads the client address, and it trusts only 127.0.0.1 by default anyway.
        proxy_headers=False,
        timeout_graceful_shutdown=30,
    )

"""`python -m services.collector`: serve the collector under uvicorn."""

from __future__ import annotations

from services.collector.app import create_app
from services.collector.settings import CollectorSettings
from services.gcsettings import tune_for_batches
from services.logs import configure_logging
from services.web.serve import serve


def main() -> None:
    """Read settings from the environment and serve."""
    settings = CollectorSettings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tune_for_batches()
    serve(app, settings.collector_host, settings.collector_port)


if __name__ == "__main__":
    main()

"""`python -m services.aggregator`: serve the aggregator under uvicorn."""

from __future__ import annotations

from services.aggregator.app import create_app
from services.aggregator.settings import AggregatorSettings
from services.gcsettings import tune_for_batches
from services.logs import configure_logging
from services.mallocsettings import fix_mmap_threshold
from services.web.serve import serve


def main() -> None:
    """Read settings from the environment and serve."""
    settings = AggregatorSettings()
    configure_logging(settings.log_level)
    fix_mmap_threshold()
    app = create_app(settings)
    tune_for_batches()
    serve(app, settings.aggregator_host, settings.aggregator_port)


if __name__ == "__main__":
    main()

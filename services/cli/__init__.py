"""The `telemetry` command line."""

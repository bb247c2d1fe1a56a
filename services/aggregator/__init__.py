"""The aggregator: consumes the events topic into TimescaleDB rollups and serves the reports."""

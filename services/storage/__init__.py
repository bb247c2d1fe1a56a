"""PostgreSQL/TimescaleDB access shared by both services: migrations, reference data, tokens."""

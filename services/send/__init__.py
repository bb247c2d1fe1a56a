"""`telemetry send`: events of any stream from JSON-lines or CSV files, posted to the collector in batches.

The pure parts (reading and coercing files, batching, judging answers and counting) are
`files`, `batches` and `outcome`; `retry` says how long to wait; `poster` is the only module
that talks HTTP.
"""

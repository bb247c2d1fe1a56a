"""Report plumbing every stream's report shares: the reference view, months, rates and CSV.

The reports themselves live with their stream (`services/streams/<stream>/report.py`), below
both the aggregator's routes and the bulletin, so neither imports the other's code to get them.
"""

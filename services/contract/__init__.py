"""The one Python model of the wire contract (schemas/*.json are its machine-readable twin)."""

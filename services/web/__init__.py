"""HTTP edge shared by both services: the one JSON error shape and bearer authentication."""

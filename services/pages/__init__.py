"""The institution pages the aggregator serves at `/`: sign in with a token, see one's month.

sessions.py (server-side sessions, the cookie and the form tokens), month.py (one
institution's month, read in one snapshot), heatmap.py (the calendar heatmap, pure SVG),
render.py (the Jinja2 templates), view.py (an institution's page from its month), routes.py (the
pages and their HTML errors).
"""

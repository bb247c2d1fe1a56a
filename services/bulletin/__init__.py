"""The monthly data-quality bulletin: the report tables in the bulletin's layout, charts and problem lists.

The month is read by services/quality/month.py and its problem lists are the data-quality
checks' findings (services/quality/checks.py, the same as `GET /v1/reports/quality`);
`charts` draws inline SVG (pure), `render` fills the page,
`pdf` prints it with headless Chromium, and `service` ties them together for the CLI and the API.
"""

"""The monthly data-quality bulletin: the report tables in the bulletin's layout, charts and problem lists.

`query` reads one consistent snapshot of a month, `problems` turns report rows into each
institution's problem list (pure), `charts` draws inline SVG (pure), `render` fills the page,
`pdf` prints it with headless Chromium, and `service` ties them together for the CLI and the API.
"""

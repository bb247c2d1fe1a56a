"""The data-quality checks, once, under every reader (issue 11, contract Revision 2).

`month` reads one snapshot of a month (the report rows and what the checks need beyond them),
`checks.run_checks` runs every check on it, each in its module (`uploads`, `identical`,
`trends`, `hotline`, `appointments`, `remote`, `cross_stream`; the catalogue of codes,
severities and titles: `problems`). `report` serves the findings (`GET /v1/reports/quality`),
`scorecard` ranks the institutions (`GET /v1/reports/scorecard`); the bulletin's problem lists,
the aggregator's quality gauges and the command line read the same findings.

For a page that shows an institution its month: `load_quality_month(conn, month, org_code)`,
then `quality_report_of(...)` and `scorecard_of(...)`, or `quality_report(conn, month,
org_code, zone=..., thresholds=...)` and `scorecard(...)` in one call.
"""

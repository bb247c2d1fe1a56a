"""Demo data of the platform: the April 2020 Nanjing bulletin, replayed as an event stream.

- `bulletin`: the bulletin's four tables, parsed (`load_bulletin`, `check_bulletin`).
- `reference`: the demo reference set (institutions, tables, declarations, kiosks),
  `python -m services.demo.reference` rewrites `data/reference-2020-04/`.
- `month`: the deterministic April 2020 event stream (`plan_month`, `generate_month`).
- `expected`: the report rows the platform must show for it (`expected_upload_rows`,
  `expected_kiosk_rows`, `compare_upload_report`, `compare_kiosk_report`).
- `replay`: posts the stream through the collector's HTTP API (`replay`, `replay_month`).

See `services/demo/README.md`.
"""

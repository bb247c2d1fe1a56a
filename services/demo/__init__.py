"""Demo data of the platform: the April 2020 Nanjing bulletin, replayed as an event stream.

- `bulletin`: the bulletin's tables, parsed (`load_bulletin`, `check_bulletin`).
- `institutions`, `platforms`, `reference`: the demo reference set (every file of contract
  revision 2); `python -m services.demo.reference` rewrites `data/reference-2020-04/`.
- `month`: the upload and kiosk streams (`plan_month`, `generate_month`); `appointments`,
  `hotline`, `remote`: the streams of revision 2 (`daily` writes them); `stream`: the whole
  month merged (`plan_demo_month`, `DemoMonth.events(kinds)`).
- `expected`: the report rows the platform must show for it, from the printed cells
  (`expected_upload_rows`, `expected_kiosk_rows`, `expected_appointments`, `expected_hotline`,
  `expected_remote_platforms`, and `compare_*`).
- `replay`: posts the stream through the collector's HTTP API (`replay`, `replay_month`).

See `services/demo/README.md`.
"""

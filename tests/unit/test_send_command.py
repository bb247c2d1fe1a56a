"""`telemetry send`'s command line: what stops it before anything is posted is exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app as cli

# A port nothing listens on would be retried; none of these cases may get as far as posting.
ENV = {"TELEMETRY_TOKEN": "a-token-of-twenty-chars", "TELEMETRY_COLLECTOR_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["missing.csv"], "no such file"),
        (["fields.jsonl"], "no stream has exactly the fields event_id, org_code; give --stream"),
        (["fields.jsonl", "--stream", "calls"], "no stream 'calls'"),
        (["fields.txt"], "give --format csv or jsonl"),
        (["twice.csv", "--stream", "upload"], "names event_id more than once"),
        (["fields.jsonl", "--stream", "upload", "--collector-url", "collector.example"], "must start with http://"),
        (["fields.jsonl", "--batch-size", "1001"], "less than or equal to 1000"),
    ],
)
def test_what_stops_the_command_before_sending_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], said: str
) -> None:
    (tmp_path / "fields.jsonl").write_text('{"event_id": "e1", "org_code": "D1"}\n')
    (tmp_path / "fields.txt").write_text("")
    (tmp_path / "twice.csv").write_text("event_id,org_code,event_id\n")
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(cli, ["send", *args], env=ENV)
    assert done.exit_code == 2, done.output
    assert said in " ".join(done.output.split())
    assert not list(tmp_path.glob("*.refused.jsonl"))


def test_without_a_token_the_command_says_where_to_give_one(tmp_path: Path) -> None:
    (tmp_path / "e.jsonl").write_text("{}\n")
    env = {"TELEMETRY_TOKEN": "", "TELEMETRY_ADMIN_TOKEN": None, "TELEMETRY_COLLECTOR_URL": "http://127.0.0.1:9"}
    done = CliRunner().invoke(cli, ["send", str(tmp_path / "e.jsonl"), "--stream", "upload"], env=env)
    assert done.exit_code == 2
    assert "--token or TELEMETRY_TOKEN" in " ".join(done.output.split())

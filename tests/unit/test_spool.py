"""The spool on a real filesystem: durable appends, ordered reads, cursor, torn tails, bounds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.collector.spool import Spool, SpoolFullError, SpoolLockedError
from services.contract.envelope import OutgoingRecord


def _record(n: int, events: int = 2) -> OutgoingRecord:
    body = b"[" + b",".join(b'{"event_id":"e%d-%d"}' % (n, i) for i in range(events)) + b"]"
    return OutgoingRecord(b"ORG%d" % (n % 3), b'{"v":1,"events":' + body + b"}", events)


def test_records_come_back_in_order_across_reopen_and_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=300)
    for n in range(20):
        spool.append([_record(n)])
    assert (spool.pending_events, spool.empty) == (40, False)
    spool.close()
    assert len(list(tmp_path.glob("*.seg"))) > 1

    reopened = Spool(tmp_path, max_bytes=10_000_000, segment_bytes=300)
    assert reopened.pending_events == 40
    seen: list[bytes] = []
    while not reopened.empty:
        batch = reopened.read_batch(7)
        assert batch.records
        seen.extend(r.value for r in batch.records)
        reopened.advance(batch)
    assert seen == [_record(n).value for n in range(20)]
    assert (reopened.pending_bytes, reopened.pending_events, reopened.oldest_at) == (0, 0, None)
    assert len(list(tmp_path.glob("*.seg"))) == 1  # forwarded segments are deleted
    reopened.close()


def test_cursor_survives_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([_record(1), _record(2), _record(3)])
    spool.advance(spool.read_batch(2))
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    rest = reopened.read_batch(10).records
    assert [r.value for r in rest] == [_record(3).value]
    assert reopened.pending_events == 2
    reopened.close()


def test_a_torn_last_frame_is_cut_off_and_appends_continue(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([_record(1)])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + _record_frame_prefix())  # a crash mid-write
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    assert segment.read_bytes() == whole
    reopened.append([_record(2)])
    records = reopened.read_batch(10).records
    assert [r.value for r in records] == [_record(1).value, _record(2).value]
    reopened.close()


def _record_frame_prefix() -> bytes:
    return b"\x00\x00\x01\x00\xde\xad"


def test_a_full_spool_refuses_and_keeps_what_it_has(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=200)
    spool.append([_record(1)])
    with pytest.raises(SpoolFullError):
        spool.append([_record(2, events=20)])
    assert spool.pending_events == 2
    spool.close()


_DISK_FULL_SCRIPT = """
import json, resource, sys
from pathlib import Path
from services.collector.spool import Spool, SpoolFullError
from tests.unit.test_spool import _record

# The kernel refuses writes past this file size with EFBIG, as a full disk refuses them with
# ENOSPC (Python ignores SIGXFSZ, so the write fails instead of killing the process).
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
directory = Path(sys.argv[1])
spool = Spool(directory, max_bytes=10_000_000)
accepted = 0
try:
    for n in range(1000):
        spool.append([_record(n, events=50)])
        accepted += 1
except SpoolFullError as exc:
    refused = str(exc)
else:
    refused = ""
# Room again: the records acknowledged before and after the failure all come back.
spool.advance(spool.read_batch(5))
spool.append([_record(9999)])
spool.close()
print(json.dumps({"accepted": accepted, "refused": refused}))
"""


def test_a_full_disk_refuses_the_write_and_leaves_no_torn_frame(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        timeout=60,
    )
    outcome = json.loads(done.stdout)
    accepted = outcome["accepted"]
    assert 5 < accepted < 1000
    assert "spool write failed" in outcome["refused"]
    reopened = Spool(tmp_path, max_bytes=10_000_000)
    rest = reopened.read_batch(10_000).records
    assert [r.value for r in rest] == [_record(n, events=50).value for n in range(5, accepted)] + [_record(9999).value]
    reopened.close()


def test_a_second_spool_on_the_same_directory_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([_record(1)])
    with pytest.raises(SpoolLockedError, match="in use by another collector"):
        Spool(tmp_path, max_bytes=1_000_000)
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1_000_000)
    assert reopened.pending_events == 2
    reopened.close()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from services.collector.spool import Spool; "
            "Spool(Path(sys.argv[1]), 1_000_000); print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(SpoolLockedError, match=f"pid {holder.pid}"):
            Spool(tmp_path, max_bytes=1_000_000)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    Spool(tmp_path, max_bytes=1_000_000).close()

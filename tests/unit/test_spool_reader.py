"""The spool's reader: every frame forwarded exactly once and in order, whatever the sizes.

The collector once lost 295,000 acknowledged events in a long broker outage: a segment that
was no longer the newest was read through one window, and when that window held fewer frames
than the batch asked for, the reader moved on to the next segment and `advance` deleted the
earlier one with its unread rest. Unit tests with tiny segments never read a segment larger
than the window. These tests drive the reader with random frame, segment and batch sizes, and
once at the sizes of that outage.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.collector.spool import AsyncSpool, Spool, SpoolDamage
from services.contract.envelope import OutgoingRecord


def _record(n: int, size: int) -> OutgoingRecord:
    """A record whose value is about `size` bytes and names its number (one "event_id" each)."""
    head = b'{"v":1,"events":[{"event_id":"r%d"}],"pad":"' % n
    return OutgoingRecord(b"ORG%d" % (n % 5), head + b"x" * max(size - len(head) - 2, 0) + b'"}', 1)


def _drain(spool: Spool, max_records: int, max_bytes: int) -> list[bytes]:
    seen: list[bytes] = []
    while not spool.empty:
        batch = spool.read_batch(max_records, max_bytes)
        assert batch.records or batch.position != spool.cursor, "the reader stalled with events pending"
        seen.extend(r.value for r in batch.records)
        spool.advance(batch)
    return seen


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sizes=st.lists(st.integers(min_value=40, max_value=300_000), min_size=1, max_size=40),
    segment_bytes=st.integers(min_value=1024, max_value=2_000_000),
    max_records=st.integers(min_value=1, max_value=50),
    max_bytes=st.integers(min_value=1, max_value=1_500_000),
    read_buffer=st.integers(min_value=2, max_value=400_000),
    reopen_every=st.integers(min_value=0, max_value=7),
)
def test_every_frame_is_read_exactly_once_in_order(
    tmp_path_factory: object,
    sizes: list[int],
    segment_bytes: int,
    max_records: int,
    max_bytes: int,
    read_buffer: int,
    reopen_every: int,
) -> None:
    directory = Path(os.environ.get("TMPDIR", "/tmp")) / f"spool-prop-{os.getpid()}-{time.monotonic_ns()}"
    spool = Spool(directory, max_bytes=1 << 40, segment_bytes=segment_bytes, read_buffer_bytes=read_buffer)
    records = [_record(n, size) for n, size in enumerate(sizes)]
    seen: list[bytes] = []
    try:
        # Appends and forwarding interleave, and the collector restarts now and then (a clean
        # close: whatever was advanced stays forwarded, the rest comes back).
        for n, record in enumerate(records):
            spool.append([record])
            if reopen_every and n % reopen_every == 0:
                batch = spool.read_batch(max_records, max_bytes)
                seen.extend(r.value for r in batch.records)
                spool.advance(batch)
                spool.close()
                spool = Spool(directory, max_bytes=1 << 40, segment_bytes=segment_bytes, read_buffer_bytes=read_buffer)
        seen.extend(_drain(spool, max_records, max_bytes))
        assert seen == [r.value for r in records]
        # Nothing left behind but the newest segment.
        assert len(list(directory.glob("*.seg"))) == 1
    finally:
        spool.close()
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()


def test_a_long_outage_with_real_batch_sizes_forwards_every_frame(tmp_path: Path) -> None:
    # The reported outage: 1,000-event requests (~190 KB frames), segments much larger than
    # one read, 200 records per forward. 20 MiB segments keep it quick; two segments fill.
    spool = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=20 * 1024 * 1024)
    records = [_record(n, 190_000) for n in range(160)]
    for record in records:
        spool.append([record])
    assert len(list(tmp_path.glob("*.seg"))) == 2
    assert _drain(spool, max_records=200, max_bytes=64 * 1024 * 1024) == [r.value for r in records]
    spool.close()


def test_a_frame_of_the_largest_record_is_read_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 30, segment_bytes=5 * 1024 * 1024)
    records = [_record(0, 100), _record(1, 4 * 1024 * 1024), _record(2, 100), _record(3, 4 * 1024 * 1024)]
    for record in records:
        spool.append([record])
    assert _drain(spool, max_records=200, max_bytes=1024) == [r.value for r in records]
    spool.close()


def test_a_zero_filled_torn_tail_is_cut_off_reported_and_appends_continue(tmp_path: Path) -> None:
    damage: list[SpoolDamage] = []
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append([_record(1, 300)])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    whole = segment.read_bytes()
    # A power cut after the file system grew the file but before the data reached the disk.
    segment.write_bytes(whole + bytes(4096))
    reopened = Spool(tmp_path, max_bytes=1 << 20, on_damage=damage.append)
    assert segment.read_bytes() == whole
    assert damage == [SpoolDamage("torn_tail", int(segment.stem), len(whole), 4096)]
    reopened.append([_record(2, 300)])
    assert [r.value for r in reopened.read_batch(10).records] == [_record(1, 300).value, _record(2, 300).value]
    reopened.close()


def test_unreadable_bytes_mid_spool_are_set_aside_and_forwarding_goes_on(tmp_path: Path) -> None:
    damage: list[SpoolDamage] = []
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=2000, on_damage=damage.append)
    records = [_record(n, 300) for n in range(12)]
    for record in records:
        spool.append([record])
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    frame_two = data.index(b'"r1"')  # inside the second frame's body
    data[frame_two] ^= 0xFF  # the disk flipped a bit of an acknowledged frame
    first.write_bytes(bytes(data))

    seen = _drain(spool, max_records=3, max_bytes=1 << 20)

    assert seen == [r.value for n, r in enumerate(records) if n != 1]
    assert [(d.kind, d.segment) for d in damage] == [("unreadable", int(first.stem))]
    aside = list(tmp_path.glob("*.unreadable-*"))
    assert len(aside) == 1 and b'\xddr1"' in aside[0].read_bytes()
    assert (spool.pending_bytes, spool.pending_events) == (0, 0)
    spool.close()


class _SlowSpool(Spool):
    """A spool whose appends take a while, to see what runs beside them."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, max_bytes=1 << 20)
        self.events: list[str] = []

    def append(self, records: list[OutgoingRecord]) -> None:  # type: ignore[override]
        self.events.append("append started")
        time.sleep(0.3)
        super().append(records)
        self.events.append("append done")

    def read_batch(self, max_records: int, max_bytes: int = 1 << 20) -> object:  # type: ignore[override]
        self.events.append("read")
        return super().read_batch(max_records, max_bytes)


async def test_a_cancelled_append_keeps_the_spool_until_its_write_is_done(tmp_path: Path) -> None:
    slow = _SlowSpool(tmp_path)
    spool = AsyncSpool(slow)
    request = asyncio.create_task(spool.append([_record(1, 300)]))
    await asyncio.sleep(0.05)
    request.cancel()  # the client went away while its events were being written
    await asyncio.sleep(0)
    await spool.read_batch(10)
    assert slow.events == ["append started", "append done", "read"]
    slow.close()


def test_the_spool_directory_is_synced_once_its_files_exist(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    directory = tmp_path / "spool"
    synced: list[set[str]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target == str(directory):
            synced.append({p.name for p in directory.iterdir()})
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    Spool(directory, max_bytes=1 << 20).close()
    # A power cut right after start-up must not lose the directory entries of the cursor and
    # the first segment (an acknowledged append would be written into a file nobody finds).
    assert synced and {"cursor", "000000000001.seg"} <= synced[-1]

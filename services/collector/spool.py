"""A bounded, fsync'ed local spool for records the broker cannot take right now.

While Kafka is unreachable the collector appends each request's records here and answers
`202` only after `fsync`, so an acknowledged event survives a crash (SIGKILL included) of
the collector. A forwarder sends the spool to Kafka in order when the broker is back and
moves a cursor, also fsync'ed, past what the broker acknowledged. After a crash the records
between the last cursor and the broker's ack are sent again: the aggregator counts each
`(org_code, event_id)` once, so that repeat is harmless. The guarantee is at-least-once
into Kafka, exactly-once into the reports.

On disk: segment files `NNNNNNNNNNNN.seg` of frames `[u32 length][u32 crc32][u16 key
length][key][value]`, and `cursor` (segment number and byte offset of the next frame to
forward). A torn frame at the end of the newest segment (a crash mid-write, never
acknowledged) is cut off when the spool is opened.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from services.contract.envelope import OutgoingRecord

_HEADER = struct.Struct(">II")
_KEY_LEN = struct.Struct(">H")
_CURSOR = struct.Struct(">QQI")
SEGMENT_BYTES = 64 * 1024 * 1024
READ_WINDOW = 8 * 1024 * 1024


class SpoolFullError(Exception):
    """The spool has no room for these records: the client must retry later (503)."""


class SpoolLockedError(Exception):
    """Another process holds the spool directory: two writers would corrupt each other's frames."""


class SpoolCorruptError(Exception):
    """A frame in the middle of the spool fails its checksum: the disk lost data."""


@dataclass(frozen=True)
class SpoolPosition:
    """Where a frame starts: segment number and byte offset."""

    segment: int
    offset: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _frame(record: OutgoingRecord) -> bytes:
    body = _KEY_LEN.pack(len(record.key)) + record.key + record.value
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def _read_frames(data: bytes, start: int) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(offset, end, key, value) of each whole frame from `start`; stops at a torn tail."""
    pos = start
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if end > len(data):
            return
        body = data[pos + _HEADER.size : end]
        if zlib.crc32(body) != crc:
            if end == len(data):
                return  # a torn last frame
            raise SpoolCorruptError(f"checksum mismatch at offset {pos}")
        (key_len,) = _KEY_LEN.unpack_from(body, 0)
        key = body[_KEY_LEN.size : _KEY_LEN.size + key_len]
        yield pos, end, key, body[_KEY_LEN.size + key_len :]
        pos = end


def _lock_directory(directory: Path) -> int:
    """Hold an exclusive lock on the spool directory for this process's lifetime.

    flock is released by the kernel when the process dies (SIGKILL included), so a crashed
    collector never leaves a stale lock behind; the pid in the file is for the error message.
    """
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise SpoolLockedError(
            f"spool directory {directory} is in use by another collector (pid {holder}); "
            "give each collector process its own TELEMETRY_SPOOL_DIR"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


class Spool:
    """Append-only segments with a forward cursor. Blocking file I/O: call through `asyncio.to_thread`."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        # Before reading anything: repairing the tail of a spool another collector is
        # appending to would cut off frames it has acknowledged.
        self._lock_fd = _lock_directory(directory)
        self.cursor = self._read_cursor()
        self._cursor_fd = os.open(directory / "cursor", os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._cursor_fd).st_size != _CURSOR.size:
            # Allocate the cursor's block now, while there is room.
            self._write_cursor(self.cursor)
        segments = self._segments()
        self._tail_segment = segments[-1] if segments else max(self.cursor.segment, 1)
        self._repair_tail()
        self._tail = _Appender(self._segment_path(self._tail_segment))
        self.pending_bytes, self.pending_events, self.oldest_at = self._scan_pending()

    # -- layout -----------------------------------------------------------------------------

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:012d}.seg"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.seg"))

    def _read_cursor(self) -> SpoolPosition:
        path = self.directory / "cursor"
        data = path.read_bytes() if path.exists() else b""
        if len(data) == _CURSOR.size:
            segment, offset, crc = _CURSOR.unpack(data)
            if zlib.crc32(data[:16]) == crc:
                return SpoolPosition(segment, offset)
        # No cursor, or a torn one: start at the oldest segment. Records forwarded before
        # are sent again, and the aggregator counts each event once.
        segments = self._segments()
        return SpoolPosition(segments[0] if segments else 1, 0)

    def _write_cursor(self, position: SpoolPosition) -> None:
        # Overwritten in place (no new file): it must work on a full disk, which is exactly
        # when the spool is being drained.
        head = struct.pack(">QQ", position.segment, position.offset)
        os.pwrite(self._cursor_fd, head + struct.pack(">I", zlib.crc32(head)), 0)
        os.fsync(self._cursor_fd)
        self.cursor = position

    def _repair_tail(self) -> None:
        path = self._segment_path(self._tail_segment)
        if not path.exists():
            return
        data = path.read_bytes()
        start = self.cursor.offset if self.cursor.segment == self._tail_segment else 0
        good = start
        for _, end, _, _ in _read_frames(data, start):
            good = end
        if good < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())

    def _scan_pending(self) -> tuple[int, int, float | None]:
        size = events = 0
        oldest: float | None = None
        for number in self._segments():
            if number < self.cursor.segment:
                continue
            path = self._segment_path(number)
            start = self.cursor.offset if number == self.cursor.segment else 0
            size += max(path.stat().st_size - start, 0)
            for _, _, _, value in _read_frames(path.read_bytes(), start):
                events += _event_count(value)
            if oldest is None and size:
                oldest = path.stat().st_mtime
        return size, events, oldest

    # -- writing ----------------------------------------------------------------------------

    def append(self, records: Sequence[OutgoingRecord]) -> None:
        """Append `records` and fsync; raise SpoolFullError if they do not fit."""
        blob = b"".join(_frame(r) for r in records)
        if self.pending_bytes + len(blob) > self.max_bytes:
            raise SpoolFullError(f"spool holds {self.pending_bytes} of {self.max_bytes} bytes")
        if self._tail.tell() + len(blob) > self.segment_bytes and self._tail.tell() > 0:
            self._rotate()
        try:
            self._tail.append_durably(blob)
        except OSError as exc:
            raise SpoolFullError(f"spool write failed: {exc.strerror or exc}") from exc
        if self.pending_bytes == 0:
            self.oldest_at = time.time()
        self.pending_bytes += len(blob)
        self.pending_events += sum(r.events for r in records)

    def _rotate(self) -> None:
        self._tail.close()
        self._tail_segment += 1
        self._tail = _Appender(self._segment_path(self._tail_segment))
        _fsync_dir(self.directory)

    # -- forwarding -------------------------------------------------------------------------

    def read_batch(self, max_records: int) -> tuple[list[OutgoingRecord], SpoolPosition]:
        """Up to `max_records` records from the cursor, and the position after them."""
        position = self.cursor
        records: list[OutgoingRecord] = []
        while len(records) < max_records:
            path = self._segment_path(position.segment)
            if not path.exists():
                break
            # Read a window from the cursor, not the whole segment: a record is at most 4 MiB.
            with open(path, "rb") as handle:
                handle.seek(position.offset)
                data = handle.read(READ_WINDOW)
            end = position.offset
            for _, frame_end, key, value in _read_frames(data, 0):
                end = position.offset + frame_end
                records.append(OutgoingRecord(key, value, _event_count(value)))
                if len(records) >= max_records:
                    break
            position = SpoolPosition(position.segment, end)
            if len(records) >= max_records or position.segment >= self._tail_segment:
                break
            position = SpoolPosition(position.segment + 1, 0)
        return records, position

    def advance(self, position: SpoolPosition, records: Sequence[OutgoingRecord]) -> None:
        """Move the cursor past records the broker acknowledged; drop finished segments."""
        self._write_cursor(position)
        self.pending_events -= sum(r.events for r in records)
        self.pending_bytes -= sum(len(_frame(r)) for r in records)
        for number in self._segments():
            if number < position.segment:
                self._segment_path(number).unlink()
        if self.pending_bytes <= 0:
            self.pending_bytes, self.pending_events, self.oldest_at = 0, 0, None
        else:
            # Age of what is left: the oldest segment still holding unforwarded frames.
            self.oldest_at = self._segment_path(position.segment).stat().st_mtime

    def close(self) -> None:
        """Close the open segment and the cursor, and release the directory."""
        self._tail.close()
        os.close(self._cursor_fd)
        os.close(self._lock_fd)

    @property
    def empty(self) -> bool:
        """Nothing waits to be forwarded."""
        return self.pending_bytes == 0


class _Appender:
    """Unbuffered appends to one segment: each append is written whole and fsync'ed, or undone."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = os.fstat(self._fd).st_size

    def tell(self) -> int:
        """Bytes in the segment."""
        return self._size

    def append_durably(self, blob: bytes) -> None:
        """Write and fsync `blob`; on failure (disk full) cut it off again and raise OSError."""
        start = self._size
        try:
            view = memoryview(blob)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # No torn frame may stay behind: later appends would be hidden behind it.
            os.ftruncate(self._fd, start)
            os.fsync(self._fd)
            raise
        self._size = start + len(blob)

    def close(self) -> None:
        """Close the segment."""
        os.close(self._fd)


def _event_count(value: bytes) -> int:
    # Counting `"event_id"` avoids decoding the record; event ids cannot contain quotes.
    return max(value.count(b'"event_id"'), 1)


class AsyncSpool:
    """The spool for the event loop: blocking I/O in a thread, one writer at a time."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._lock = asyncio.Lock()

    async def append(self, records: Sequence[OutgoingRecord]) -> None:
        """Durably append (returns after fsync) or raise SpoolFullError."""
        async with self._lock:
            await asyncio.to_thread(self.spool.append, records)

    async def read_batch(self, max_records: int) -> tuple[list[OutgoingRecord], SpoolPosition]:
        """Records from the cursor on."""
        async with self._lock:
            return await asyncio.to_thread(self.spool.read_batch, max_records)

    async def advance(self, position: SpoolPosition, records: Sequence[OutgoingRecord]) -> None:
        """Move the cursor after the broker acknowledged `records`."""
        async with self._lock:
            await asyncio.to_thread(self.spool.advance, position, records)

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
forward). A segment is deleted only once the cursor has moved past its last byte.

Damage, and what is done about it:
- A torn tail of the newest segment (a crash or power cut during a write that was never
  acknowledged: a partial frame, or zeros where the file system had extended the file) is
  cut off when the spool is opened, logged, and counted.
- Unreadable bytes in the middle of the spool (the disk lost acknowledged data) are moved
  aside to `NNNNNNNNNNNN.seg.unreadable-<offset>` for inspection, logged, counted, and the
  reader goes on at the next whole frame, so one bad sector does not stall every event
  after it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from services.contract.envelope import OutgoingRecord

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_KEY_LEN = struct.Struct(">H")
_CURSOR = struct.Struct(">QQI")
SEGMENT_BYTES = 64 * 1024 * 1024
# The largest frame body a collector writes: a 4 MiB record value plus its key. A header
# that declares more is damage, not a frame.
MAX_FRAME_BODY = 4 * 1024 * 1024 + _KEY_LEN.size + 0xFFFF
# What one read_batch hands to the forwarder at most (always at least one frame).
BATCH_BYTES = 8 * 1024 * 1024
# How much of a segment is read at a time; frames may be larger or span two reads.
READ_BUFFER_BYTES = 1024 * 1024
_ZEROS = bytes(_HEADER.size)
_NON_ZERO = re.compile(rb"[^\x00]")

T = TypeVar("T")


class SpoolFullError(Exception):
    """The spool has no room for these records: the client must retry later (503)."""


class SpoolLockedError(Exception):
    """Another process holds the spool directory: two writers would corrupt each other's frames."""


@dataclass(frozen=True)
class SpoolPosition:
    """Where a frame starts: segment number and byte offset."""

    segment: int
    offset: int


@dataclass(frozen=True)
class SpoolBatch:
    """Records read from the cursor on, the position after them, and the spool bytes they span."""

    records: list[OutgoingRecord]
    position: SpoolPosition
    span_bytes: int
    """Bytes between the cursor and `position`: the frames read plus any unreadable bytes set aside."""


@dataclass(frozen=True)
class SpoolDamage:
    """Bytes the spool could not read: a torn tail cut off, or unreadable bytes set aside."""

    kind: str  # "torn_tail" or "unreadable"
    segment: int
    offset: int
    length: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _frame(record: OutgoingRecord) -> bytes:
    body = _KEY_LEN.pack(len(record.key)) + record.key + record.value
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def frame_size(record: OutgoingRecord) -> int:
    """Bytes `record` takes in a segment."""
    return _HEADER.size + _KEY_LEN.size + len(record.key) + len(record.value)


def _decode_body(body: bytes) -> tuple[bytes, bytes] | None:
    """(key, value) of a frame body whose checksum matched, or None if its key length is impossible."""
    if len(body) < _KEY_LEN.size:
        return None
    (key_len,) = _KEY_LEN.unpack_from(body, 0)
    if _KEY_LEN.size + key_len > len(body):
        return None
    return body[_KEY_LEN.size : _KEY_LEN.size + key_len], body[_KEY_LEN.size + key_len :]


def _frame_at(data: bytes | memoryview, pos: int) -> tuple[int, bytes, bytes] | None:
    """(end, key, value) of a whole valid frame starting at `pos` of `data`, else None."""
    if pos + _HEADER.size > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    end = pos + _HEADER.size + length
    if length > MAX_FRAME_BODY or end > len(data):
        return None
    body = bytes(data[pos + _HEADER.size : end])
    if zlib.crc32(body) != crc:
        return None
    decoded = _decode_body(body)
    return None if decoded is None else (end, *decoded)


class _SegmentReader:
    """Frames of one segment file from an offset, through a read buffer (a frame may be any size)."""

    def __init__(self, handle: BinaryIO, start: int, size: int) -> None:
        self._handle = handle
        self.pos = start
        self.size = size
        handle.seek(start)

    def next_frame(self) -> tuple[bytes, bytes] | None:
        """(key, value) of the frame at `pos` (and move past it), or None if none starts there."""
        header = self._handle.read(_HEADER.size)
        if len(header) < _HEADER.size:
            self._handle.seek(self.pos)
            return None
        length, crc = _HEADER.unpack(header)
        if length > MAX_FRAME_BODY or self.pos + _HEADER.size + length > self.size:
            self._handle.seek(self.pos)
            return None
        body = self._handle.read(length)
        decoded = _decode_body(body) if len(body) == length and zlib.crc32(body) == crc else None
        if decoded is None:
            self._handle.seek(self.pos)
            return None
        self.pos += _HEADER.size + length
        return decoded

    def skip_to(self, pos: int) -> None:
        """Go on reading at `pos` (past bytes set aside)."""
        self.pos = pos
        self._handle.seek(pos)


def _next_frame_start(path: Path, start: int, size: int) -> int:
    """Offset of the first whole valid frame after `start`, or `size` if none follows.

    Scans byte by byte: only ever run on damaged bytes. A random header passes the CRC-32 of
    its body with odds of 1 in 4 billion.
    """
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(size - start)
    pos = 1
    while pos < len(data):
        if data[pos : pos + _HEADER.size] == _ZEROS:
            # A zero-filled stretch (a power cut after the file grew): no header is all zeros.
            found = _NON_ZERO.search(data, pos)
            if found is None:
                break
            pos = max(pos + 1, found.start() - (_HEADER.size - 1))
            continue
        if _frame_at(data, pos) is not None:
            return start + pos
        pos += 1
    return size


def _set_aside(path: Path, start: int, end: int) -> Path:
    """Copy bytes [start, end) of a segment to a file beside it, fsync'ed, for inspection."""
    aside = path.with_name(f"{path.name}.unreadable-{start}")
    with open(path, "rb") as source:
        source.seek(start)
        data = source.read(end - start)
    with open(aside, "wb") as target:
        target.write(data)
        os.fsync(target.fileno())
    _fsync_dir(path.parent)
    return aside


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
    """Append-only segments with a forward cursor. Blocking file I/O: call through `AsyncSpool`."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = SEGMENT_BYTES,
        on_damage: Callable[[SpoolDamage], None] | None = None,
        read_buffer_bytes: int = READ_BUFFER_BYTES,
    ) -> None:
        self.directory = directory
        self._read_buffer = read_buffer_bytes
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._on_damage = on_damage
        if not directory.exists():
            directory.mkdir(parents=True)
            # The directory's own entry must survive a power cut with the files in it.
            _fsync_dir(directory.parent)
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
        # The cursor's and the first segment's directory entries, before anything is acknowledged.
        _fsync_dir(directory)
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

    def _report(self, damage: SpoolDamage) -> None:
        if self._on_damage is not None:
            self._on_damage(damage)

    def _repair_tail(self) -> None:
        """Cut off a torn last write of the newest segment (never acknowledged: no fsync returned)."""
        path = self._segment_path(self._tail_segment)
        if not path.exists():
            return
        size = path.stat().st_size
        start = self.cursor.offset if self.cursor.segment == self._tail_segment else 0
        with open(path, "rb", buffering=self._read_buffer) as handle:
            reader = _SegmentReader(handle, min(start, size), size)
            while reader.next_frame() is not None:
                pass
            good = reader.pos
        if good >= size:
            return
        if _next_frame_start(path, good, size) < size:
            # Whole frames follow the bad bytes: those were acknowledged and the damage is
            # in the middle, not a torn tail. The reader sets it aside when it gets there.
            return
        with open(path, "r+b") as handle:
            handle.truncate(good)
            os.fsync(handle.fileno())
        damage = SpoolDamage("torn_tail", self._tail_segment, good, size - good)
        log.warning(
            "spool: cut off a torn tail (a write interrupted by a crash or power cut, never acknowledged)",
            extra={"segment": str(path), "offset": good, "bytes": size - good},
        )
        self._report(damage)

    def _scan_pending(self) -> tuple[int, int, float | None]:
        size = events = 0
        oldest: float | None = None
        for number in self._segments():
            if number < self.cursor.segment:
                continue
            path = self._segment_path(number)
            start = self.cursor.offset if number == self.cursor.segment else 0
            segment_size = path.stat().st_size
            size += max(segment_size - start, 0)
            with open(path, "rb", buffering=self._read_buffer) as handle:
                reader = _SegmentReader(handle, min(start, segment_size), segment_size)
                while (frame := reader.next_frame()) is not None:
                    events += _event_count(frame[1])
            if oldest is None and segment_size > start:
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

    def read_batch(self, max_records: int, max_bytes: int = BATCH_BYTES) -> SpoolBatch:
        """Records from the cursor on: at most `max_records`, and about `max_bytes` (at least one).

        A segment is read to its last byte before the batch moves on to the next one, so
        `advance` never deletes a segment with frames still unread, whatever the sizes of
        frames, segments and batches.
        """
        position = self.cursor
        records: list[OutgoingRecord] = []
        taken = span = 0

        def full() -> bool:
            return len(records) >= max_records or taken >= max_bytes

        while not full():
            path = self._segment_path(position.segment)
            try:
                handle = open(path, "rb", buffering=self._read_buffer)  # noqa: SIM115  (closed by `with` below)
            except FileNotFoundError:
                if position.segment >= self._tail_segment:
                    break
                position = SpoolPosition(position.segment + 1, 0)
                continue
            with handle:
                size = os.fstat(handle.fileno()).st_size
                start = min(position.offset, size)
                reader = _SegmentReader(handle, start, size)
                while not full():
                    frame = reader.next_frame()
                    if frame is not None:
                        key, value = frame
                        records.append(OutgoingRecord(key, value, _event_count(value)))
                        taken += _HEADER.size + _KEY_LEN.size + len(key) + len(value)
                    elif reader.pos < size:
                        # Bytes before the segment's end that are no frame: damage.
                        reader.skip_to(self._set_aside_unreadable(path, position.segment, reader.pos, size))
                    else:
                        break
            span += reader.pos - start
            if reader.pos < size or position.segment >= self._tail_segment:
                position = SpoolPosition(position.segment, reader.pos)
                break
            position = SpoolPosition(position.segment + 1, 0)
        return SpoolBatch(records, position, span)

    def _set_aside_unreadable(self, path: Path, segment: int, start: int, size: int) -> int:
        """Move unreadable bytes aside; return the offset of the next whole frame (or the end)."""
        resume = _next_frame_start(path, start, size)
        aside = _set_aside(path, start, resume)
        log.error(
            "spool: unreadable bytes set aside (the disk lost acknowledged data); forwarding goes on after them",
            extra={"segment": str(path), "offset": start, "bytes": resume - start, "kept_in": str(aside)},
        )
        self._report(SpoolDamage("unreadable", segment, start, resume - start))
        return resume

    def advance(self, batch: SpoolBatch) -> None:
        """Move the cursor past a batch the broker acknowledged; drop segments wholly behind it."""
        position = batch.position
        self._write_cursor(position)
        self.pending_events = max(self.pending_events - sum(r.events for r in batch.records), 0)
        self.pending_bytes -= batch.span_bytes
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
    """The spool for the event loop: blocking I/O in a thread, one operation at a time.

    An operation holds the lock until its thread has finished, even when the request that
    started it is cancelled (a client that went away): otherwise the next append could run
    beside a write still in progress.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._lock = asyncio.Lock()

    async def _exclusive(self, operation: Callable[[], T]) -> T:
        async def run() -> T:
            async with self._lock:
                return await asyncio.to_thread(operation)

        task = asyncio.ensure_future(run())
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def append(self, records: Sequence[OutgoingRecord]) -> None:
        """Durably append (returns after fsync) or raise SpoolFullError."""
        await self._exclusive(lambda: self.spool.append(records))

    async def read_batch(self, max_records: int) -> SpoolBatch:
        """Records from the cursor on."""
        return await self._exclusive(lambda: self.spool.read_batch(max_records))

    async def advance(self, batch: SpoolBatch) -> None:
        """Move the cursor after the broker acknowledged `batch`."""
        await self._exclusive(lambda: self.spool.advance(batch))


def _retrieve(task: asyncio.Future[Any]) -> None:
    # The outcome of an operation whose caller was cancelled is read here, so asyncio does
    # not report it as never retrieved; the caller that stayed sees it itself.
    if not task.cancelled():
        task.exception()

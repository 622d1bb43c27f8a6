"""An append-only log of queue changes, in front of the SQLite file at the crash level.

At the crash level a job must be in the operating system before JOB_CREATED,
not on the disk.  A SQLite commit gives far more than that for ~40 µs of the
event loop.  So the store appends each new job to a log of its own as a
record and acknowledges it at once (completions share a record a millisecond).  The
log file is mapped into memory (``MAP_SHARED``): a record is a copy into the
kernel's page cache, with no system call, and it survives a kill of the
process as a ``write()`` would.  A background thread fsyncs the log once a
second (what a power cut can take).  When a log file is full, a checkpoint
moves what it still holds into the SQLite table on the store's thread (jobs
that came and went meanwhile never reach the table), fsyncs the table's WAL
and deletes the file.  At start, logs left by a crash are replayed into the
table first.

The log is a series of generation files, ``FILE.pending-N``, each allocated
whole when it is started (:data:`SEGMENT_BYTES`, so that a full disk is an
error then rather than a SIGBUS when a mapped page is first written).
Generations are applied and deleted in order, so a crash at any point leaves
files whose replay (in order) yields the right table: inserts replace, deletes
of absent rows do nothing.

A record is ``length, crc32`` then its payload: the adds and the deletions of
one append.  The unwritten rest of a file is zeros, and a length of zero ends
it.  A process killed while copying a record, or a power cut, can leave a
garbled last record; replay stops there, which loses nothing that was
acknowledged (an acknowledgement follows a complete copy).
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import StoredJob, StoreError

__all__ = ["SEGMENT_BYTES", "Generation", "Journal", "read_generation", "replay"]

log = logging.getLogger(__name__)

SEGMENT_BYTES = 8 << 20
"""Bytes of log per generation file: about 50,000 small jobs submitted and
finished.  A bigger file means rarer checkpoints and a longer replay after a
crash (8 MiB replays in well under a second)."""

_HEADER = struct.Struct(">II")  # payload length, crc32 of the payload
_COUNTS = struct.Struct(">II")  # adds, deletions
_JOB = struct.Struct(">QBqIIIIII")  # id, priority, when, attempts, then 5 lengths
_ID = struct.Struct(">Q")


class Generation:
    """One log file's changes, kept in memory too, for its checkpoint."""

    __slots__ = ("added", "done", "number", "paths")

    def __init__(self, path: Path, number: int) -> None:
        self.paths = [path]  # the files its checkpoint deletes
        self.number = number
        self.added: dict[int, StoredJob] = {}
        self.done: list[int] = []

    def note(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Fold one append in: a job added and finished in the same generation cancels out
        (ids are never reused, so an id deleted here was added here or earlier)."""
        mine = self.added
        for job in added:
            mine[job.id] = job
        for job_id in done:
            if mine.pop(job_id, None) is None:
                self.done.append(job_id)

    def __bool__(self) -> bool:
        return bool(self.added or self.done)


class Journal:
    """The generation files beside ``path`` (the SQLite file): append, rotate, replay."""

    def __init__(self, path: Path) -> None:
        self.stem = f"{path}.pending-"
        self.current: Generation | None = None
        self.filled: list[Generation] = []  # full generations, oldest first, for checkpoints
        self.touched: set[str] = set()  # files written since their last fsync (the syncer's)
        self._map: mmap.mmap | None = None
        self._name = ""  # the current file, as the syncer names it
        self._at = 0  # where the next record goes

    def leftovers(self) -> list[Path]:
        """Generation files on disk, oldest first (at open: what a crash left)."""
        directory = Path(self.stem).parent
        prefix = Path(self.stem).name
        found = []
        for entry in directory.glob(f"{prefix}*"):
            number = entry.name[len(prefix) :]
            if number.isdigit():
                found.append((int(number), entry))
        return [entry for _, entry in sorted(found)]

    def start(self) -> None:
        """Open a new generation numbered above anything on disk."""
        existing = self.leftovers()
        self._open(int(existing[-1].name.rsplit("-", 1)[1]) + 1 if existing else 1)

    def _open(self, number: int, size: int = SEGMENT_BYTES) -> None:
        path = Path(f"{self.stem}{number}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, size)
            mapped = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)  # the mapping keeps the file
        if self._map is not None:
            self._map.close()
        self._map, self._at, self._name = mapped, 0, str(path)
        self.current = Generation(path, number)
        # A new file's name must reach the disk too.
        self.touched.add(str(path.parent))

    def append(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Copy one record into the log; once this returns, a crash of this process keeps it.

        Raises StoreError if a full file cannot be followed by a new one."""
        mapped = self._map
        if mapped is None:
            raise StoreError("the queue log is not open")
        payload = encode(added, done)
        header = _HEADER.pack(len(payload), zlib.crc32(payload))
        size = _HEADER.size + len(payload)
        at = self._at
        if at + size > len(mapped):
            try:
                # Room for the record and a zero header after it.
                self.filled.append(self.rotate(size + _HEADER.size))
            except OSError as exc:
                raise StoreError(f"cannot start a new queue log file: {exc}") from exc
            mapped, at = self._map, 0
            assert mapped is not None
        # The payload first, then its header: a kill in between leaves a zero
        # length, the clean end of the file.
        mapped[at + _HEADER.size : at + size] = payload
        mapped[at : at + _HEADER.size] = header
        self._at = at + size
        self.current.note(added, done)  # type: ignore[union-attr]  # set with the map
        self.touched.add(self._name)

    def rotate(self, room: int = 0) -> Generation:
        """Start the next generation (with room for ``room`` bytes at least); return the
        previous one for its checkpoint."""
        old = self.current
        assert old is not None
        self._open(old.number + 1, max(SEGMENT_BYTES, room))
        return old

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self.current = None


_ONE = struct.Struct(">II" + _JOB.format[1:])  # counts (1, 0) and one job, packed at once


def _job_parts(pack: Callable[..., bytes], job: StoredJob, *counts: int) -> tuple[bytes, ...]:
    """One job's packed head (after ``counts``, if any) and its variable fields."""
    job_id, function, unique, data, priority, when, handle, attempts, text = job
    outcomes = text.encode()
    head = pack(
        *counts,
        job_id,
        priority,
        when,
        attempts,
        len(function),
        len(unique),
        len(data),
        len(handle),
        len(outcomes),
    )
    return head, function, unique, data, handle, outcomes


def encode(added: Sequence[StoredJob], done: Sequence[int]) -> bytes:
    if len(added) == 1 and not done:  # a submission: the acknowledgement's path
        return b"".join(_job_parts(_ONE.pack, added[0], 1, 0))
    parts = [_COUNTS.pack(len(added), len(done))]
    for job in added:
        parts += _job_parts(_JOB.pack, job)
    if len(done) == 1:
        parts.append(_ID.pack(done[0]))
    elif done:
        parts.append(struct.pack(f">{len(done)}Q", *done))
    return b"".join(parts)


def _decode(payload: bytes) -> tuple[list[StoredJob], list[int]]:
    n_added, n_done = _COUNTS.unpack_from(payload)
    at = _COUNTS.size
    added = []
    for _ in range(n_added):
        job_id, priority, when, attempts, *lengths = _JOB.unpack_from(payload, at)
        at += _JOB.size
        fields = []
        for length in lengths:
            fields.append(payload[at : at + length])
            at += length
        function, unique, data, handle, outcomes = fields
        added.append(
            StoredJob(
                job_id, function, unique, data, priority, when, handle, attempts, outcomes.decode()
            )
        )
    done = list(struct.unpack_from(f">{n_done}Q", payload, at))
    if at + n_done * _ID.size != len(payload):
        raise ValueError("record length does not match its contents")
    return added, done


def replay(paths: list[Path]) -> tuple[Generation, int]:
    """What log files left by a crash change in the table, oldest first, and how
    many records they hold.  Unlike a live generation's, a deletion is kept even
    when the job was added in these files: an earlier checkpoint may have put it
    in the table before the crash."""
    changes = Generation(paths[0], 0)
    changes.paths = list(paths)
    added, done = changes.added, changes.done
    records = 0
    for path in paths:
        for jobs, ids in read_generation(path):
            records += 1
            for job in jobs:
                added[job.id] = job
            for job_id in ids:
                added.pop(job_id, None)
                done.append(job_id)
    return changes, records


def read_generation(path: Path) -> Iterator[tuple[list[StoredJob], list[int]]]:
    """The records of one log file, in order, up to its end or a damaged record."""
    raw = path.read_bytes()
    at = 0
    while at + _HEADER.size <= len(raw):
        length, crc = _HEADER.unpack_from(raw, at)
        if length == 0:
            return  # the unwritten rest of the file
        payload = raw[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            yield _decode(payload)
        except (struct.error, ValueError, UnicodeDecodeError):
            break
        at += _HEADER.size + length
    if raw[at:].strip(b"\0"):
        # A crash while copying a record, or a power cut; nothing after it was acknowledged.
        log.warning("%s: ignored a damaged last record (%d bytes from its start)", path, at)

"""An append-only log of queue changes, in front of the SQLite file at the crash level.

At the crash level a job must be in the operating system before JOB_CREATED,
not on the disk.  One ``write()`` to a file of our own gives exactly that for
~1 µs, where a SQLite commit costs ~50 µs of the event loop.  So the store
appends each loop turn's submissions and completions to the log as one record
and acknowledges at once; about once a second a checkpoint moves what the log
holds into the SQLite table on the store's thread, fsyncs it, and deletes the
log file.  At start, logs left by a crash are replayed into the table first.

The log is a series of generation files, ``FILE.pending-N``.  A checkpoint
starts a new generation for the appends that follow and applies the old one;
generations are applied and deleted in order, so a crash at any point leaves
only files whose replay (in order) yields the right table: inserts replace,
deletes of absent rows do nothing.

A record is ``length, crc32`` then its payload: the adds and the deletions of
one append.  A process killed in ``write()`` or a power cut can leave a
truncated or garbled last record; replay stops there, which loses nothing that
was acknowledged (an acknowledgement follows a complete write).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import StoredJob, StoreError

__all__ = ["Generation", "Journal", "read_generation", "replay"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")  # payload length, crc32 of the payload
_COUNTS = struct.Struct(">II")  # adds, deletions
_JOB = struct.Struct(">QBqIIIIII")  # id, priority, when, attempts, then 5 lengths
_ID = struct.Struct(">Q")


class Generation:
    """One log file's changes, kept in memory too, for its checkpoint."""

    __slots__ = ("added", "done", "number", "paths")

    def __init__(self, path: Path, number: int) -> None:
        self.paths = [path]  # the files its checkpoint deletes: its own, and any it took over
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
        self._fd = -1
        self.appends = 0  # records written, for metrics and tests

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

    def start(self, after: int = 0) -> None:
        """Open a new generation numbered above ``after`` and above anything on disk."""
        existing = self.leftovers()
        last = int(existing[-1].name.rsplit("-", 1)[1]) if existing else 0
        self._open(max(after, last) + 1)

    def _open(self, number: int) -> None:
        path = Path(f"{self.stem}{number}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = fd
        self.current = Generation(path, number)

    def append(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Write one record; once this returns, a crash of this process keeps it."""
        current = self.current
        if current is None:
            raise StoreError("the queue log is not open")
        payload = encode(added, done)
        record = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        try:
            written = os.write(self._fd, record)
            if written != len(record):
                raise OSError(f"short write ({written} of {len(record)} bytes)")
        except OSError as exc:
            # The file may end in a partial record now: later records go to a
            # new generation, so replay (which stops at a bad record) reads them.
            self._rotate_after_failure()
            raise StoreError(f"{current.paths[-1]}: {exc}") from exc
        current.note(added, done)
        self.appends += 1

    def _rotate_after_failure(self) -> None:
        current = self.current
        assert current is not None
        try:
            self._open(current.number + 1)
        except OSError:
            pass  # the next append fails again and is refused again
        else:
            # Its changes still need their checkpoint: carry them over, with its file.
            successor = self.current
            assert successor is not None
            successor.note(list(current.added.values()), current.done)
            successor.paths[:0] = current.paths

    def rotate(self) -> Generation:
        """Start the next generation; return the previous one for its checkpoint."""
        old = self.current
        assert old is not None
        self._open(old.number + 1)
        return old

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.current = None


def encode(added: Sequence[StoredJob], done: Sequence[int]) -> bytes:
    parts = [_COUNTS.pack(len(added), len(done))]
    pack = _JOB.pack
    for job_id, function, unique, data, priority, when, handle, attempts, text in added:
        outcomes = text.encode()
        parts += (
            pack(
                job_id,
                priority,
                when,
                attempts,
                len(function),
                len(unique),
                len(data),
                len(handle),
                len(outcomes),
            ),
            function,
            unique,
            data,
            handle,
            outcomes,
        )
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
    """The records of one log file, in order, up to the first incomplete or damaged one."""
    raw = path.read_bytes()
    at = 0
    while at < len(raw):
        if at + _HEADER.size > len(raw):
            break
        length, crc = _HEADER.unpack_from(raw, at)
        payload = raw[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        try:
            yield _decode(payload)
        except (struct.error, ValueError, UnicodeDecodeError):
            break
        at += _HEADER.size + length
    if at < len(raw):
        # A crash in write() or a power cut; nothing after it was acknowledged.
        log.warning("%s: ignored %d bytes of an incomplete last record", path, len(raw) - at)

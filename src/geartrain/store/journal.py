"""An append-only log of queue changes, in front of the SQLite file at the crash level.

At the crash level a job must be in the operating system before JOB_CREATED,
not on the disk.  A SQLite commit gives far more than that for ~40 µs of the
event loop.  So the store appends each new job to a log of its own as a
record and acknowledges it at once (completions share a record a millisecond).  The
log file is mapped into memory (``MAP_SHARED``): a record is a copy into the
kernel's page cache, with no system call, and it survives a kill of the
process as a ``write()`` would.  A background thread fsyncs the log once a
second (what a power cut can take).  When a log file is full, and after a
moment for its jobs to end (``store.sqlite``), a checkpoint moves what the full
files still hold into the SQLite table on the store's thread (jobs that came
and went meanwhile, in these files or in deletions logged since, never reach
the table), fsyncs the table's WAL and deletes the files.  At start, logs left
by a crash are read back and checkpointed first.

The log is a series of generation files, ``FILE.pending-N``, each allocated
whole when it is started (so that a full disk is an error then rather than a
SIGBUS when a mapped page is first written): :data:`SEGMENT_BYTES`, or less
when the disk is short of room (``store.room``).  A file is started when a
record needs one.  Generations are applied and deleted in order, so a crash
at any point leaves files whose replay (in order) yields the right table:
inserts replace, deletes of absent rows do nothing.

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

from . import StoredJob, StoreFull
from .room import RESERVE_BYTES, failure, free_bytes, mib

__all__ = [
    "MIN_SEGMENT_BYTES",
    "SEGMENT_BYTES",
    "Generation",
    "Journal",
    "Pending",
    "net",
    "read_generation",
]

log = logging.getLogger(__name__)

SEGMENT_BYTES = 8 << 20
"""Bytes of log per generation file: about 50,000 small jobs submitted and
finished.  A bigger file means rarer checkpoints and a longer replay after a
crash (8 MiB replays in well under a second)."""

MIN_SEGMENT_BYTES = 64 << 10
"""The smallest file started for new jobs: with less room than that, the disk
counts as full (a file of a few hundred jobs would cost a checkpoint each)."""

_HEADER = struct.Struct(">II")  # payload length, crc32 of the payload
_COUNTS = struct.Struct(">II")  # adds, deletions
_JOB = struct.Struct(">QBqIIIIII")  # id, priority, when, attempts, then 5 lengths
_ID = struct.Struct(">Q")


class Generation:
    """One log file's changes as ids, for its checkpoint, which reads the jobs back
    from the file: holding each job's record in memory until then (seconds, at
    tens of thousands of jobs a second) left the heap scattered with its freed
    space once the checkpoint let them go (about 170 bytes per queued job after a
    million submissions)."""

    __slots__ = ("added", "done", "number", "path")

    def __init__(self, path: Path, number: int) -> None:
        self.path = path  # the file its checkpoint reads and deletes
        self.number = number
        self.added: set[int] = set()  # jobs added here and not finished since
        self.done: list[int] = []  # jobs added in earlier generations, finished here

    def note(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Fold one append in: a job added and finished in the same generation cancels out
        (ids are never reused, so an id deleted here was added here or earlier).  No
        checkpoint reads a generation before its last record, so the table never
        saw such a job."""
        mine = self.added
        for job in added:
            mine.add(job.id)
        for job_id in done:
            if job_id in mine:
                mine.remove(job_id)
            else:
                self.done.append(job_id)

    def jobs(self) -> Iterator[StoredJob]:
        """The jobs added here and not finished here, read back from the file."""
        pending = self.added
        for jobs, _done in read_generation(self.path, warn=False):
            for job in jobs:
                if job.id in pending:
                    yield job

    def __bool__(self) -> bool:
        return bool(self.added or self.done)


class Pending:
    """The jobs that sealed generations still add to the table, read from their files
    each time they are iterated (a checkpoint sizes them, then writes them)."""

    def __init__(self, generations: Sequence[Generation], gone: set[int]) -> None:
        self.generations = generations
        self.gone = gone

    def __iter__(self) -> Iterator[StoredJob]:
        gone = self.gone
        for generation in self.generations:
            for job in generation.jobs():
                if job.id not in gone:
                    yield job


def net(
    generations: Sequence[Generation], done_since: Sequence[int] = ()
) -> tuple[Pending, list[int]]:
    """What applying ``generations`` (oldest first) and then the deletions
    ``done_since`` does to the table: the jobs it still has to insert, and every
    deletion.  A deletion is kept even when it cancels an add of an earlier
    generation: a checkpoint killed before it deleted its files may have inserted
    that job."""
    done = [job_id for generation in generations for job_id in generation.done]
    done += done_since
    return Pending(generations, set(done)), done


class Journal:
    """The generation files beside ``path`` (the SQLite file): append, rotate, read back."""

    def __init__(self, path: Path) -> None:
        self.stem = f"{path}.pending-"
        self.directory = path.parent
        self.current: Generation | None = None
        self.filled: list[Generation] = []  # sealed generations, oldest first, for checkpoints
        self.touched: set[str] = set()  # files written since their last fsync (the syncer's)
        self._map: mmap.mmap | None = None
        self._name = ""  # the current file, as the syncer names it
        self._at = 0  # where the next record goes
        self._size = 0  # the current file's size (0: none)
        self._end = 0  # where records with new jobs must end (0 in a file of deletions)
        self._last = 0  # the highest file number on disk
        self._wanted = 0  # the size of the last record with jobs that found no room

    def leftovers(self) -> list[Path]:
        """Generation files on disk, oldest first (at open: what a crash left)."""
        prefix = Path(self.stem).name
        found = []
        for entry in self.directory.glob(f"{prefix}*"):
            number = entry.name[len(prefix) :]
            if number.isdigit():
                found.append((int(number), entry))
        return [entry for _, entry in sorted(found)]

    def recover(self) -> int:
        """At open: read the files a crash left into sealed generations, for the first
        checkpoint (and, until it succeeds, for loading); returns their records."""
        records = 0
        for path in self.leftovers():
            generation = Generation(path, int(path.name.rsplit("-", 1)[1]))
            for jobs, ids in read_generation(path):
                generation.note(jobs, ids)
                records += 1
            self.filled.append(generation)
            self._last = generation.number
        return records

    def append(self, added: Sequence[StoredJob], done: Sequence[int]) -> None:
        """Copy one record into the log; once this returns, a crash of this process keeps it.

        Raises StoreFull if a new file is needed and the disk has no room for it (a
        record of deletions only may use the room kept free for them), StoreError
        if it cannot be started for another reason."""
        payload = encode(added, done)
        header = _HEADER.pack(len(payload), zlib.crc32(payload))
        size = _HEADER.size + len(payload)
        at = self._at
        if at + size > (self._end if added else self._size):
            # Room for the record and a zero header after it.
            if added:
                self._wanted = size
            self._start(size + _HEADER.size, bool(added))
            self._wanted = 0
            at = 0
        mapped = self._map
        assert mapped is not None
        # The payload first, then its header: a kill in between leaves a zero
        # length, the clean end of the file.
        mapped[at + _HEADER.size : at + size] = payload
        mapped[at : at + _HEADER.size] = header
        self._at = at + size
        self.current.note(added, done)  # type: ignore[union-attr]  # set with the map
        self.touched.add(self._name)

    def takes_jobs(self) -> bool:
        """Whether a record with a new job fits now without starting a file (one as
        large as the last that found no room, if one did not)."""
        return self._end - self._at > max(2 * _HEADER.size + _JOB.size, self._wanted)

    def check_room(self) -> None:
        """Raise StoreFull unless a record with a new job would find room now."""
        if not self.takes_jobs():
            self._size_for(MIN_SEGMENT_BYTES, True)

    def _start(self, room: int, jobs: bool) -> None:
        """Start the next file, with room for ``room`` bytes at least, and seal the
        current one for its checkpoint.  On failure nothing changes."""
        path = Path(f"{self.stem}{self._last + 1}")
        try:
            size = self._size_for(room, jobs)
            mapped = _allocate(path, size)
        except OSError as exc:
            raise failure(f"cannot start a new queue log file {path}", exc) from exc
        self.seal()
        self._map, self._name, self._size = mapped, str(path), size
        self._end = size if jobs else 0
        self._last += 1
        self.current = Generation(path, self._last)
        # A new file's name must reach the disk too.
        self.touched.add(str(self.directory))

    def _size_for(self, room: int, jobs: bool) -> int:
        """The size of the next file: up to half of the room there is, leaving the
        other half to the checkpoint of the one before it.  A file for new jobs leaves
        the reserve alone; one for deletions (the disk is full) may take from it."""
        free = free_bytes(self.directory)
        spare = free - RESERVE_BYTES if jobs else free
        size = max(room, MIN_SEGMENT_BYTES, min(SEGMENT_BYTES, spare // 2))
        if size > spare:
            kept = f" and {mib(RESERVE_BYTES)} kept for deletions" if jobs else ""
            where = f"a new queue log file in {self.directory}"
            raise StoreFull(f"no room for {where}: {mib(free)} free, {mib(size)} needed{kept}")
        return size

    def seal(self) -> None:
        """Write no more into the current file: it waits for the next checkpoint (an
        empty one is removed now).  The next record starts a new file."""
        if self._map is not None:
            self._map.close()
            self._map = None
        self._at = self._size = self._end = 0
        current, self.current = self.current, None
        if current:
            self.filled.append(current)
        elif current is not None:
            current.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._at = self._size = self._end = 0
        self.current = None


def _allocate(path: Path, size: int) -> mmap.mmap:
    """A new file of ``size`` bytes, allocated on the disk and mapped."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # the mapping keeps the file


_ONE = struct.Struct(">II" + _JOB.format[1:])  # counts (1, 0) and one job, packed at once


_RETRY_FLAG = 0x80
"""Set in a job's priority byte when a retry policy follows its outcomes (its
length first): records written before policies were kept still read alike."""
_LENGTH = struct.Struct(">I")


def _job_parts(pack: Callable[..., bytes], job: StoredJob, *counts: int) -> tuple[bytes, ...]:
    """One job's packed head (after ``counts``, if any) and its variable fields."""
    job_id, function, unique, data, priority, when, handle, attempts, text, retry = job
    outcomes = text.encode()
    head = pack(
        *counts,
        job_id,
        priority | _RETRY_FLAG if retry else priority,
        when,
        attempts,
        len(function),
        len(unique),
        len(data),
        len(handle),
        len(outcomes),
    )
    if retry:
        policy = retry.encode()
        return head, function, unique, data, handle, outcomes, _LENGTH.pack(len(policy)), policy
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
        retry = ""
        if priority & _RETRY_FLAG:
            priority &= ~_RETRY_FLAG
            (length,) = _LENGTH.unpack_from(payload, at)
            at += _LENGTH.size
            retry = payload[at : at + length].decode()
            at += length
        added.append(
            StoredJob(
                job_id,
                function,
                unique,
                data,
                priority,
                when,
                handle,
                attempts,
                outcomes.decode(),
                retry,
            )
        )
    done = list(struct.unpack_from(f">{n_done}Q", payload, at))
    if at + n_done * _ID.size != len(payload):
        raise ValueError("record length does not match its contents")
    return added, done


def read_generation(path: Path, warn: bool = True) -> Iterator[tuple[list[StoredJob], list[int]]]:
    """The records of one log file, in order, up to its end or a damaged record (logged
    unless ``warn`` is false: a checkpoint reads again what the recovery has read)."""
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
    if warn and raw[at:].strip(b"\0"):
        # A crash while copying a record, or a power cut; nothing after it was acknowledged.
        log.warning("%s: ignored a damaged last record (%d bytes from its start)", path, at)

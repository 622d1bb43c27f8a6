"""The server's data: jobs, functions and the connections the core talks to.

These are plain slotted classes with no behaviour beyond bookkeeping; every
decision about which job runs where lives in :mod:`geartrain.server.core`.
They are mutable and slotted because a server holds hundreds of thousands of
jobs and touches them on every packet.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..retry import Retry
    from ..store.records import Attempt

Send = Callable[[bytes | list[bytes]], None]

__all__ = ["HIGH", "LOW", "NORMAL", "Function", "HeldReplies", "Job", "JobState", "Owed", "Peer"]

HIGH, NORMAL, LOW = 0, 1, 2
"""Priorities as the server keeps them: gearmand's numbers, which its queue
tables store, and the index of a function's queue (``Priority.level``)."""


class JobState(IntEnum):
    """Where a job is in its life."""

    PENDING = 0  #: waiting for the store to commit it; not yet acknowledged
    SCHEDULED = 1  #: an epoch job whose time has not come
    QUEUED = 2  #: waiting for a worker
    RUNNING = 3  #: assigned to a worker
    DONE = 4  #: finished, failed, cancelled or dropped; stale queue entries are skipped


# The states as static constants: the compiled build would look an enum member up
# on its class (or in a module's dict) at each use.
PENDING: Final = JobState.PENDING
SCHEDULED: Final = JobState.SCHEDULED
QUEUED: Final = JobState.QUEUED
RUNNING: Final = JobState.RUNNING
DONE: Final = JobState.DONE


class Job:
    """One job, from submission until its result has been sent."""

    __slots__ = (
        "handle",
        "function",
        "unique",
        "data",
        "priority",
        "background",
        "when",
        "state",
        "clients",
        "worker",
        "retries",
        "numerator",
        "denominator",
        "reducer",
        "store_id",
        "timer",
        "waiters",
        "ignored",
        "failures",
        "outcomes",
        "created_at",
        "started_at",
        "owner",
        "retry",
        "keep_result",
    )

    def __init__(
        self,
        handle: bytes,
        function: Function,
        unique: bytes,
        data: bytes,
        priority: int,
        background: bool,
    ) -> None:
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.priority = priority
        self.background = background
        self.when: float = 0.0  # epoch seconds; 0: now
        self.state = JobState.QUEUED
        # Foreground clients waiting for results (None rather than an empty list:
        # background jobs are the bulk of a large queue, and an empty list costs
        # 56 bytes each).
        self.clients: list[Peer] | None = None
        self.worker: Peer | None = None
        self.retries = 0  # times its worker was lost and it was queued again (-j)
        self.numerator = 0
        self.denominator = 0
        self.reducer = b""
        self.store_id = 0
        self.timer: Any = None
        # Connections owed a JOB_CREATED once the store has committed the job.
        self.waiters: list[Peer] | None = None
        # Cancelled or abandoned while running: the worker's result is dropped.
        self.ignored = False
        # Failed attempts so far and how each ended, for the retry policy and
        # the failed-job set.
        self.failures = 0
        self.outcomes: tuple[Attempt, ...] = ()
        # Epoch seconds, for the console's ages and the wait/run histograms.
        self.created_at = 0.0
        self.started_at = 0.0
        # The submitter's identity, when access rules decide who may coalesce.
        self.owner = ""
        # The retry policy its submission carried (the retries extension).
        self.retry: Retry | None = None
        # Seconds its submitter asked its result to be kept (the keep_result
        # option); it travels with the job where the job is shared (cluster mode).
        self.keep_result = 0.0

    def __repr__(self) -> str:
        return f"<Job {self.handle!r} {self.function.name!r} {self.state.name}>"


class Function:
    """A function name with its three priority queues and its registrations."""

    __slots__ = (
        "name",
        "queues",
        "queued",
        "total",
        "running",
        "scheduled",
        "workers",
        "sleepers",
        "absent",
        "uniques",
        "by_data",
        "max_queue",
        "data_bytes",
        "retry",
        "paused",
    )

    def __init__(self, name: bytes) -> None:
        self.name = name
        # One FIFO per priority, made with the first job (three empty deques cost
        # 2.4 KB, and a worker may register 100,000 functions that never get one).
        # Entries whose job left the QUEUED state (it was cancelled or abandoned)
        # stay until they reach the head and are skipped there, so removal is
        # O(1); `queued` counts only live entries.
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] | None = None
        self.queued = [0, 0, 0]
        self.total = 0  # every job of the function: pending, scheduled, queued, running
        self.running = 0
        self.scheduled = 0
        # Registered workers (a repeated CAN_DO counts once; gearmand counts twice).
        self.workers: dict[Peer, None] = {}
        # Workers registered here that may be asleep without a NOOP since their last
        # grab, oldest first: the ones to wake when work arrives.  Entries go stale
        # (the worker woke) and are dropped when reached, so that sleeping and waking
        # cost a worker nothing per function it registered (see Peer.unlisted).
        self.sleepers: OrderedDict[Peer, None] = OrderedDict()
        # Per priority, its workers whose heap lacks it (Queues.take); made with its
        # first job (until then every worker lacks it).
        self.absent: tuple[dict[Peer, None], dict[Peer, None], dict[Peer, None]] | None = None
        self.uniques: dict[bytes, Job] = {}
        self.by_data: dict[bytes, Job] = {}  # unique "-": coalesce on identical data
        self.max_queue: tuple[int, int, int] | None = None
        self.data_bytes = 0  # data held by its jobs, for the per-function byte limit
        self.retry: Retry | None = None  # the retry policy its workers declared, the latest
        self.paused = False  # set by .pauses: its jobs stay queued, no worker gets one

    def has_queued(self) -> bool:
        q = self.queued
        return bool(q[0] or q[1] or q[2])

    def available(self) -> bool:
        """A worker could get one of its jobs now: some are queued and it is not paused."""
        return not self.paused and self.has_queued()

    def make_queues(self) -> tuple[deque[Job], deque[Job], deque[Job]]:
        queues = self.queues = (deque(), deque(), deque())
        return queues

    def make_absent(self) -> tuple[dict[Peer, None], dict[Peer, None], dict[Peer, None]]:
        absent = self.absent = ({}, {}, {})
        return absent

    def unused(self) -> bool:
        """Nothing refers to it: no worker, no job, no maxqueue setting."""
        return not self.workers and not self.total and self.max_queue is None


HeapEntry = tuple[int, int, Function]


class Peer:
    """A connection as the core sees it: a client, a worker, an admin, or all three.

    The I/O layer creates one per connection and supplies ``send`` (queue bytes,
    or a list of pieces of one large packet, for the peer) and ``close`` (drop
    the connection).
    """

    __slots__ = (
        "send",
        "close",
        "host",
        "fd",
        "loopback",
        "client_id",
        "abilities",
        "sleeping",
        "noop_sent",
        "unlisted",
        "heaps",
        "exceptions",
        "retry_extension",
        "next_retry",
        "jobs",
        "attached",
        "closed",
        "connected_at",
        "names",
        "identity",
        "held",
        "keep_result",
    )

    def __init__(
        self,
        send: Callable[[bytes | list[bytes]], None],
        close: Callable[[], None],
        host: str = "-",
        fd: int = -1,
        loopback: bool = False,
    ) -> None:
        self.send = send
        self.close = close
        self.host = host
        self.fd = fd
        self.loopback = loopback
        self.client_id = b"-"
        # Registrations: function -> (CAN_DO_TIMEOUT ms, rank).  The highest rank
        # is tried first (the most recent registration, as gearmand; --round-robin
        # gives a function that just ran the lowest rank).
        self.abilities: dict[Function, tuple[int, int]] = {}
        self.sleeping = False
        self.noop_sent = False
        # Its functions whose ``sleepers`` it is missing from: it joins them when it
        # next goes to sleep (every other function still lists it).
        self.unlisted: dict[Function, None] = {}
        # Per priority, (-rank, sequence, function) of its registrations with work
        # and some without (Queues.take); made when it first needs one.
        self.heaps: tuple[list[HeapEntry], list[HeapEntry], list[HeapEntry]] | None = None
        self.exceptions = False
        # It speaks the retries extension; the policy for its next submission.
        self.retry_extension = False
        self.next_retry: Retry | None = None
        self.jobs: set[Job] = set()  # jobs this worker is running
        self.attached: set[Job] | None = None  # foreground jobs this client waits on
        self.closed = False
        self.connected_at = 0.0
        # TLS client certificate names (set by the I/O layer), and the identity
        # the access rules give this peer (set by the core).
        self.names: tuple[str, ...] = ()
        self.identity = "anonymous"
        # What waits behind an answer owed to this peer (reply_order), if any.
        self.held: HeldReplies | None = None
        # Seconds the results of its background jobs are kept (OPTION_REQ keep_result=); 0: not.
        self.keep_result = 0.0

    def make_heaps(self) -> tuple[list[HeapEntry], list[HeapEntry], list[HeapEntry]]:
        heaps = self.heaps = ([], [], [])
        return heaps

    def functions(self) -> list[Function]:
        """Registered functions in the order they are tried (gearmand's `workers` order)."""
        ranked = sorted(self.abilities.items(), key=lambda item: item[1][1], reverse=True)
        return [f for f, _entry in ranked]

    def __repr__(self) -> str:
        return f"<Peer fd={self.fd} {self.host} {self.client_id!r}>"


class Owed:
    """A place in a peer's held output for an answer still to come (see :mod:`.reply_order`)."""

    __slots__ = ("key", "data")

    def __init__(self, key: object) -> None:
        self.key = key
        self.data: bytes | None = None


class HeldReplies:
    """A peer's output while it is owed an answer: the connection's own send, and
    what waits to be sent, oldest first."""

    __slots__ = ("send", "queue")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.queue: deque[bytes | list[bytes] | Owed] = deque()

"""The protocol scenario table: what each peer sends and must receive, exactly.

Every scenario runs three ways: against the server core in memory
(tests/server/test_scenarios.py), and over sockets against a `geartrain server`
process and against Debian's gearmand (tests/e2e/test_scenarios.py).  The language is
in scenario_player.py.  Peers: "c" clients, "w" workers, "a" an admin connection.
"""

from __future__ import annotations

import re
import socket

from geartrain.protocol import RES
from scenario_player import (
    CLOSED,
    Admin,
    Leave,
    Nothing,
    Scenario,
    Step,
    T,
    Var,
    differs,
    recv,
    scenario,
    send,
)

H1, H2, H3, H4, H5, H6, H7, H8 = (Var(f"H{i}") for i in range(1, 9))

HOST_HANDLE = b"H:" + socket.gethostname().encode()
"""Both servers' default handle prefix."""

NOT_FOUND = b"Job given in work result not found"
STILL_USED = b"ERR there are still connected workers or executing clients\r\n"


def submit(
    peer: str, ptype: T, function: bytes, unique: bytes, data: bytes, handle: Var
) -> list[Step]:
    return [send(peer, ptype, function, unique, data), recv(peer, T.JOB_CREATED, handle)]


def grab(peer: str, handle: Var, function: bytes, unique: bytes, data: bytes) -> list[Step]:
    return [
        send(peer, T.GRAB_JOB_UNIQ),
        recv(peer, T.JOB_ASSIGN_UNIQ, handle, function, unique, data),
    ]


def no_job(peer: str) -> list[Step]:
    return [send(peer, T.GRAB_JOB_UNIQ), recv(peer, T.NO_JOB)]


def sleep(peer: str) -> list[Step]:
    """The worker's idle cycle: a GRAB answered NO_JOB, then PRE_SLEEP."""
    return [*no_job(peer), send(peer, T.PRE_SLEEP)]


def status(*lines: bytes) -> Admin:
    return Admin("a", b"status", b"".join(line + b"\n" for line in lines) + b".\n")


# -- submitting and finishing jobs ---------------------------------------------------

SUBMITS = [
    (T.SUBMIT_JOB, False),
    (T.SUBMIT_JOB_HIGH, False),
    (T.SUBMIT_JOB_LOW, False),
    (T.SUBMIT_JOB_BG, True),
    (T.SUBMIT_JOB_HIGH_BG, True),
    (T.SUBMIT_JOB_LOW_BG, True),
]

ROUND_TRIPS = [
    scenario(
        f"round trip {ptype.name}",
        send("w", T.CAN_DO, b"f"),
        submit("c", ptype, b"f", b"u1", b"payload\0with nul", H1),
        grab("w", H1, b"f", b"u1", b"payload\0with nul"),
        send("w", T.WORK_COMPLETE, H1, b"result\0bytes"),
        [] if background else [recv("c", T.WORK_COMPLETE, H1, b"result\0bytes")],
        status(b"f\t0\t0\t1"),  # the job is gone
    )
    for ptype, background in SUBMITS
]

JOBS = [
    scenario(
        "handles count new jobs only",
        send("c", T.SUBMIT_JOB_BG, b"f", b"same", b"x"),
        recv("c", T.JOB_CREATED, HOST_HANDLE + b":1"),
        send("c", T.SUBMIT_JOB_BG, b"f", b"same", b"y"),
        recv("c", T.JOB_CREATED, HOST_HANDLE + b":1"),
        send("c", T.SUBMIT_JOB_BG, b"f", b"", b"z"),
        recv("c", T.JOB_CREATED, HOST_HANDLE + b":2"),
    ),
    scenario(
        "job handle prefix",
        send("c", T.SUBMIT_JOB_BG, b"f", b"", b"x"),
        recv("c", T.JOB_CREATED, b"pfx:1"),
        flags=("--job-handle-prefix=pfx",),
    ),
    scenario(
        "results go to every waiting client",
        submit("c1", T.SUBMIT_JOB, b"f", b"shared", b"x", H1),
        submit("c2", T.SUBMIT_JOB, b"f", b"shared", b"other data", H1),
        submit("c3", T.SUBMIT_JOB_BG, b"f", b"shared", b"bg", H1),  # gets nothing back
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"shared", b"x"),
        send("w", T.WORK_STATUS, H1, b"1", b"4"),
        send("w", T.WORK_DATA, H1, b"chunk"),
        send("w", T.WORK_WARNING, H1, b"careful"),
        send("w", T.WORK_COMPLETE, H1, b"done"),
        [
            step
            for client in ("c1", "c2")
            for step in (
                recv(client, T.WORK_STATUS, H1, b"1", b"4"),
                recv(client, T.WORK_DATA, H1, b"chunk"),
                recv(client, T.WORK_WARNING, H1, b"careful"),
                recv(client, T.WORK_COMPLETE, H1, b"done"),
            )
        ],
    ),
    scenario(
        "coalescing rules",
        submit("c", T.SUBMIT_JOB_BG, b"f", b"k", b"d", H1),
        submit("c", T.SUBMIT_JOB_LOW_BG, b"f", b"k", b"other", H1),  # any priority
        submit("c", T.SUBMIT_JOB_BG, b"g", b"k", b"d", H2),  # per function
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"d", H3),  # an empty unique never coalesces
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"d", H4),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"-", b"same data", H5),  # "-": the data is the key
        submit("c", T.SUBMIT_JOB_BG, b"f", b"-", b"same data", H5),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"-", b"different", H6),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"-", b"", H7),  # ... but no data never coalesces
        submit("c", T.SUBMIT_JOB_BG, b"f", b"-", b"", H8),
    ),
    scenario(
        "foreground duplicate of a background job gets its results",
        submit("bg", T.SUBMIT_JOB_BG, b"f", b"k", b"d", H1),
        submit("fg", T.SUBMIT_JOB, b"f", b"k", b"d", H1),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"k", b"d"),
        send("w", T.WORK_COMPLETE, H1, b"r"),
        recv("fg", T.WORK_COMPLETE, H1, b"r"),
    ),
    scenario(
        "foreground duplicate of a background job leaving keeps it",
        submit("bg", T.SUBMIT_JOB_BG, b"f", b"u", b"x", H1),
        submit("fg", T.SUBMIT_JOB, b"f", b"u", b"x", H1),
        Leave("fg"),
        send("w", T.CAN_DO, b"f"),
        differs(ours=grab("w", H1, b"f", b"u", b"x"), gearmand=no_job("w")),
    ),
    scenario(
        "background job survives its submitter",
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"x", H1),
        Leave("c"),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"", b"x"),
    ),
    scenario(
        "foreground job dropped when its clients leave",
        submit("c1", T.SUBMIT_JOB, b"f", b"u", b"x", H1),
        submit("c2", T.SUBMIT_JOB, b"f", b"u", b"x", H1),
        Leave("c1"),
        status(b"f\t1\t0\t0"),
        Leave("c2"),
        # gearmand counts it until a worker reaches it and discards it.
        differs(ours=[status(b"f\t0\t0\t0")], gearmand=[status(b"f\t1\t0\t0")]),
        send("w", T.CAN_DO, b"f"),
        no_job("w"),
    ),
    scenario(
        "unique key too long",
        send("c", T.SUBMIT_JOB, b"f", b"u" * 65, b"d"),
        recv("c", T.ERROR, b"ARGUMENT_TOO_LARGE", b"Unique value too large"),
        submit("c", T.SUBMIT_JOB, b"f", b"u" * 63, b"d", H1),
    ),
    scenario(
        "epoch in the past runs now",
        send("c", T.SUBMIT_JOB_EPOCH, b"f", b"", b"1000", b"now"),
        recv("c", T.JOB_CREATED, H1),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"", b"now"),
    ),
    scenario(
        "reduce jobs and GRAB_JOB_ALL",
        send("c", T.SUBMIT_REDUCE_JOB, b"map", b"u", b"reducer", b"", b"data"),
        recv("c", T.JOB_CREATED, H1),
        submit("c", T.SUBMIT_JOB_BG, b"map", b"", b"plain", H2),
        send("w", T.CAN_DO, b"map"),
        send("w", T.GRAB_JOB_ALL),
        recv("w", T.JOB_ASSIGN_ALL, H1, b"map", b"u", b"reducer", b"data"),
        send("w", T.GRAB_JOB_ALL),  # no reducer: answered as GRAB_JOB_UNIQ, as gearmand does
        recv("w", T.JOB_ASSIGN_UNIQ, H2, b"map", b"", b"plain"),
        send("w", T.WORK_COMPLETE, H1, b"reduced"),
        recv("c", T.WORK_COMPLETE, H1, b"reduced"),
        send("c", T.SUBMIT_REDUCE_JOB_BACKGROUND, b"map", b"u2", b"r", b"", b"d"),
        recv("c", T.JOB_CREATED, H3),
        send("w", T.GRAB_JOB),
        recv("w", T.JOB_ASSIGN, H3, b"map", b"d"),
    ),
    scenario(
        "exceptions only to clients that asked",
        send("wants", T.OPTION_REQ, b"exceptions"),
        recv("wants", T.OPTION_RES, b"exceptions"),
        send("wants", T.OPTION_REQ, b"Exceptions"),
        recv("wants", T.OPTION_RES, b"Exceptions"),
        submit("plain", T.SUBMIT_JOB, b"f", b"e", b"x", H1),
        submit("wants", T.SUBMIT_JOB, b"f", b"e", b"x", H1),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"e", b"x"),
        send("w", T.WORK_EXCEPTION, H1, b"boom"),
        recv("wants", T.WORK_EXCEPTION, H1, b"boom"),
        differs(
            ours=[recv("plain", T.WORK_FAIL, H1)],
            gearmand=[recv("plain", T.WORK_FAIL, (H1, b"\0"))],  # a stray NUL
        ),
        send("w", T.WORK_FAIL, H1),  # python-gearman workers send both
        recv("w", T.ERROR, b"JOB_NOT_FOUND", NOT_FOUND),
    ),
    scenario(
        "exceptions flag enables it for everyone",
        submit("c", T.SUBMIT_JOB, b"f", b"", b"x", H1),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"", b"x"),
        send("w", T.WORK_EXCEPTION, H1, b"boom"),
        recv("c", T.WORK_EXCEPTION, H1, b"boom"),
        flags=("--exceptions",),
    ),
    scenario(
        "work results need the owning worker",
        submit("c", T.SUBMIT_JOB, b"f", b"", b"x", H1),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"", b"x"),
        send("other", T.WORK_DATA, H1, b"x"),
        recv("other", T.ERROR, b"JOB_NOT_FOUND", b"Job does not exist on server"),
        send("other", T.WORK_DATA, b"H:nope", b"x"),
        recv("other", T.ERROR, b"JOB_NOT_FOUND", b"Job does not exist on server"),
        send("other", T.WORK_COMPLETE, H1, b"x"),
        recv("other", T.ERROR, b"JOB_NOT_FOUND", NOT_FOUND),
        send("other", T.WORK_EXCEPTION, H1, b"x"),
        recv(
            "other",
            T.ERROR,
            b"JOB_NOT_FOUND",
            b"An exception was received for a job that does not exist",
        ),
        send("w", T.WORK_COMPLETE, H1, b"fine"),
        recv("c", T.WORK_COMPLETE, H1, b"fine"),
    ),
]

# -- status ----------------------------------------------------------------------------

STATUS = [
    scenario(
        "GET_STATUS",
        submit("c", T.SUBMIT_JOB_BG, b"f", b"su", b"x", H1),
        send("c", T.GET_STATUS, H1),
        recv("c", T.STATUS_RES, H1, b"1", b"0", b"0", b"0"),
        send("w", T.CAN_DO, b"f"),
        grab("w", H1, b"f", b"su", b"x"),
        send("w", T.WORK_STATUS, H1, b"3", b"7"),
        send("c", T.GET_STATUS, H1),
        recv("c", T.STATUS_RES, H1, b"1", b"1", b"3", b"7"),
        send("w", T.WORK_COMPLETE, H1, b""),
        send("c", T.GET_STATUS, H1),
        recv("c", T.STATUS_RES, H1, b"0", b"0", b"0", b"0"),
        send("c", T.GET_STATUS, b"H:nowhere:1"),
        recv("c", T.STATUS_RES, b"H:nowhere:1", b"0", b"0", b"0", b"0"),
    ),
    scenario(
        "GET_STATUS_UNIQUE counts waiting clients",
        submit("c1", T.SUBMIT_JOB, b"f", b"key", b"x", H1),
        submit("c2", T.SUBMIT_JOB, b"f", b"key", b"x", H1),
        send("asker", T.GET_STATUS_UNIQUE, b"key"),
        recv("asker", T.STATUS_RES_UNIQUE, b"key", b"1", b"0", b"0", b"0", b"2"),
        send("asker", T.GET_STATUS_UNIQUE, b"nope"),
        recv("asker", T.STATUS_RES_UNIQUE, b"nope", b"0", b"0", b"0", b"0", b"0"),
    ),
]

# -- handing out jobs --------------------------------------------------------------------

PRIORITY_JOBS = [
    (b"low-1", T.SUBMIT_JOB_LOW_BG, H1),
    (b"normal-1", T.SUBMIT_JOB_BG, H2),
    (b"high-1", T.SUBMIT_JOB_HIGH_BG, H3),
    (b"normal-2", T.SUBMIT_JOB_BG, H4),
    (b"high-2", T.SUBMIT_JOB_HIGH_BG, H5),
    (b"low-2", T.SUBMIT_JOB_LOW_BG, H6),
]


def run(peer: str, handle: Var, function: bytes, data: bytes) -> list[Step]:
    """Grab the job and complete it."""
    return [*grab(peer, handle, function, b"", data), send(peer, T.WORK_COMPLETE, handle, b"")]


A_A_B_B = [(b"a", H1), (b"a", H2), (b"b", H3), (b"b", H4)]


def rotation(name: str, order: list[int], flags: tuple[str, ...] = ()) -> Scenario:
    """Jobs of a, a, b, b queued; a worker that registers a, then b, is handed them in
    ``order`` (places in A_A_B_B)."""
    return scenario(
        name,
        [submit("c", T.SUBMIT_JOB_BG, f, b"", f, h) for f, h in A_A_B_B],
        send("w", T.CAN_DO, b"a"),
        send("w", T.CAN_DO, b"b"),
        [grab("w", h, f, b"", f) for f, h in (A_A_B_B[i] for i in order)],
        no_job("w"),
        flags=flags,
    )


HANDING_OUT = [
    scenario(
        "priorities then FIFO",
        [submit("c", ptype, b"f", b"", data, handle) for data, ptype, handle in PRIORITY_JOBS],
        send("w", T.CAN_DO, b"f"),
        run("w", H3, b"f", b"high-1"),
        run("w", H5, b"f", b"high-2"),
        run("w", H2, b"f", b"normal-1"),
        run("w", H4, b"f", b"normal-2"),
        run("w", H1, b"f", b"low-1"),
        run("w", H6, b"f", b"low-2"),
        no_job("w"),
    ),
    scenario(
        "priority is global across a worker's functions",
        submit("c", T.SUBMIT_JOB_LOW_BG, b"a", b"", b"a-low", H1),
        submit("c", T.SUBMIT_JOB_HIGH_BG, b"b", b"", b"b-high", H2),
        send("w", T.CAN_DO, b"b"),
        send("w", T.CAN_DO, b"a"),  # registered last: gearmand 1.1 looks here first (#173)
        differs(
            ours=grab("w", H2, b"b", b"", b"b-high"), gearmand=grab("w", H1, b"a", b"", b"a-low")
        ),
    ),
    rotation("most recent CAN_DO first", [2, 3, 0, 1]),
    rotation("round robin rotates functions", [2, 0, 3, 1], flags=("--round-robin",)),
    scenario(
        "round robin rotates with ranks",
        send("w", T.CAN_DO, b"a"),
        send("w", T.CAN_DO, b"b"),
        send("w", T.CAN_DO, b"c"),
        [
            submit("c", T.SUBMIT_JOB_BG, f, b"", f + n, h)
            for (f, n), h in zip(
                [(f, n) for f in (b"a", b"b", b"c") for n in (b"0", b"1")],
                (H1, H2, H3, H4, H5, H6),
                strict=True,
            )
        ],
        # Most recent registration first, then each function that ran goes to the back.
        run("w", H5, b"c", b"c0"),
        run("w", H3, b"b", b"b0"),
        run("w", H1, b"a", b"a0"),
        run("w", H6, b"c", b"c1"),
        run("w", H4, b"b", b"b1"),
        run("w", H2, b"a", b"a1"),
        no_job("w"),
        flags=("--round-robin",),
    ),
]

# -- workers lost, retries ------------------------------------------------------------------

LET_GO: dict[str, Step] = {
    "disconnect": Leave("w1"),
    "CANT_DO": send("w1", T.CANT_DO, b"f"),
    "RESET_ABILITIES": send("w1", T.RESET_ABILITIES),
}

LOST = [
    scenario(
        f"lost job requeued at the tail ({how})",
        submit("c", T.SUBMIT_JOB, b"f", b"", b"first", H1),
        submit("c", T.SUBMIT_JOB, b"f", b"", b"second", H2),
        send("w1", T.CAN_DO, b"f"),
        grab("w1", H1, b"f", b"", b"first"),
        send("w1", T.WORK_STATUS, H1, b"1", b"2"),
        recv("c", T.WORK_STATUS, H1, b"1", b"2"),
        let_go,
        send("w2", T.CAN_DO, b"f"),
        grab("w2", H2, b"f", b"", b"second"),
        grab("w2", H1, b"f", b"", b"first"),
        send("c", T.GET_STATUS, H1),
        recv("c", T.STATUS_RES, H1, b"1", b"1", b"0", b"0"),  # progress reset
        send("w2", T.WORK_COMPLETE, H1, b"ok"),
        recv("c", T.WORK_COMPLETE, H1, b"ok"),
    )
    for how, let_go in LET_GO.items()
]


def attempts(count: int, first: int = 0) -> list[Step]:
    """Workers that take the job and let go of it: by CANT_DO, or by dying."""
    steps: list[Step] = []
    for i in range(first, first + count):
        worker = f"w{i}"
        steps += [send(worker, T.CAN_DO, b"f"), *grab(worker, H1, b"f", b"", b"x")]
        steps.append(send(worker, T.CANT_DO, b"f") if i % 2 else Leave(worker))
    return steps


def retries(flag: str, runs: int, gearmand: list[Step] | None = None) -> Scenario:
    """With --job-retries=``flag`` the job fails after ``runs`` attempts."""
    tail = [
        recv("c", T.WORK_FAIL, H1),
        send("last", T.CAN_DO, b"f"),
        *no_job("last"),
        status(b"f\t0\t0\t1"),  # the job is gone
    ]
    return scenario(
        f"job retries {flag}",
        submit("c", T.SUBMIT_JOB, b"f", b"", b"x", H1),
        attempts(runs),
        tail if gearmand is None else differs(ours=tail, gearmand=gearmand),
        flags=(f"--job-retries={flag}",),
    )


RETRIES = [
    retries("3", 3),
    retries("2", 2),
    retries("1", 1),
    # 1.1 reads 0 as "no limit"; 2.0 and geartrain as "no retries".
    retries("0", 1, gearmand=attempts(5, first=1)),
    scenario(
        "unlimited retries by default", submit("c", T.SUBMIT_JOB, b"f", b"", b"x", H1), attempts(6)
    ),
]

# -- sleeping workers ------------------------------------------------------------------------

WAKING = [
    scenario(
        "one NOOP per sleeping worker",
        send("w", T.CAN_DO, b"f"),
        send("idle", T.CAN_DO, b"unrelated"),
        sleep("w"),
        sleep("idle"),
        submit("c", T.SUBMIT_JOB, b"f", b"", b"1", H1),
        submit("c", T.SUBMIT_JOB, b"f", b"", b"2", H2),
        recv("w", T.NOOP),
        Nothing("w"),  # a second job does not NOOP an already woken worker
        Nothing("idle"),
        send("w", T.PRE_SLEEP),  # work is waiting: woken at once
        recv("w", T.NOOP),
    ),
    *(
        scenario(
            f"sleeping worker woken when it gains a function with jobs ({ptype.name})",
            submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"1", H1),
            submit("c", T.SUBMIT_JOB_BG, b"g", b"", b"2", H2),
            send("w", T.PRE_SLEEP),  # asleep before it registers anything (aiogear does this)
            send("w", T.CAN_DO, b"idle"),
            Nothing("w"),
            send("w", ptype, *args),
            # gearmand: no NOOP; the worker waits for the next submission.
            differs(ours=[recv("w", T.NOOP)], gearmand=[Nothing("w")]),
            send("w", T.CAN_DO, b"g"),  # already woken: one NOOP until the next grab
            Nothing("w"),
            grab("w", H2, b"g", b"", b"2"),
            grab("w", H1, b"f", b"", b"1"),
            sleep("w"),
            send("w", T.CAN_DO, b"h"),  # nothing queued: no NOOP, until a job comes
            Nothing("w"),
            submit("c", T.SUBMIT_JOB_BG, b"h", b"", b"3", H3),
            recv("w", T.NOOP),
        )
        for ptype, *args in ((T.CAN_DO, b"f"), (T.CAN_DO_TIMEOUT, b"f", b"5000"))
    ),
    scenario(
        "a worker of several functions is woken by each, each time it sleeps",
        [send("w", T.CAN_DO, f) for f in (b"f", b"g", b"h")],
        sleep("w"),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"1", H1),
        recv("w", T.NOOP),
        submit("c", T.SUBMIT_JOB_BG, b"g", b"", b"2", H2),
        Nothing("w"),  # already woken
        grab("w", H2, b"g", b"", b"2"),  # the most recent registration first
        grab("w", H1, b"f", b"", b"1"),
        sleep("w"),
        submit("c", T.SUBMIT_JOB_BG, b"h", b"", b"3", H3),
        recv("w", T.NOOP),
        grab("w", H3, b"h", b"", b"3"),
        sleep("w"),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"4", H4),
        recv("w", T.NOOP),
        grab("w", H4, b"f", b"", b"4"),
        sleep("w"),
        submit("c", T.SUBMIT_JOB_BG, b"g", b"", b"5", H5),
        recv("w", T.NOOP),
    ),
    scenario(
        "a worker that woke for one function leaves the next NOOP to a sleeping one",
        send("w1", T.CAN_DO, b"f"),
        send("w1", T.CAN_DO, b"g"),
        send("w2", T.CAN_DO, b"g"),
        sleep("w1"),
        sleep("w2"),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"1", H1),
        recv("w1", T.NOOP),
        Nothing("w2"),
        grab("w1", H1, b"f", b"", b"1"),
        submit("c", T.SUBMIT_JOB_BG, b"g", b"", b"2", H2),
        recv("w2", T.NOOP),
        Nothing("w1"),
        flags=("--worker-wakeup=1",),
    ),
    scenario(
        "worker wakeup limits NOOPs",
        [[send(w, T.CAN_DO, b"f"), *sleep(w)] for w in ("w1", "w2", "w3")],
        submit("c", T.SUBMIT_JOB, b"f", b"", b"1", H1),
        recv("w1", T.NOOP),
        Nothing("w2"),
        Nothing("w3"),
        submit("c", T.SUBMIT_JOB, b"f", b"", b"2", H2),
        recv("w2", T.NOOP),
        Nothing("w1"),
        Nothing("w3"),
        flags=("--worker-wakeup=1",),
    ),
]

# -- admin lines --------------------------------------------------------------------------

ADMIN = [
    scenario(
        "maxqueue refuses new jobs",
        submit("c", T.SUBMIT_JOB_BG, b"f", b"u", b"1", H1),
        Admin("a", b"maxqueue f 1", b"OK\r\n"),
        send("c", T.SUBMIT_JOB_BG, b"f", b"", b"2"),
        recv("c", T.ERROR, b"QUEUE_ERROR", b"Job queue is full"),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"u", b"1", H1),  # a duplicate is not a new job
        Admin("a", b"maxqueue f 0 5 0", b"OK\r\n"),  # HIGH NORMAL LOW
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"3", H2),
        Admin("a", b"maxqueue f", b"OK\r\n"),  # no limit
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"4", H3),
    ),
    scenario(
        "cancel job",
        submit("c", T.SUBMIT_JOB, b"f", b"", b"x", H1),
        Admin("a", (b"cancel job ", H1), b"OK\r\n"),
        recv("c", T.WORK_FAIL, H1),
        # gearmand only marks the job; it still counts.
        differs(ours=[status(b"f\t0\t0\t0")], gearmand=[status(b"f\t1\t0\t0")]),
        send("w", T.CAN_DO, b"f"),
        no_job("w"),
    ),
    scenario(
        "cancel job answers",
        submit("c", T.SUBMIT_JOB_BG, b"f", b"", b"x", H1),
        Admin("a", (b"cancel job ", H1), b"OK\r\n"),
        # gearmand only marks the job: it can be cancelled again.
        differs(
            ours=[Admin("a", (b"cancel job ", H1), b"ERR UNKNOWN_JOB\r\n")],
            gearmand=[Admin("a", (b"cancel job ", H1), b"OK\r\n")],
        ),
        differs(ours=[status(b"f\t0\t0\t0")], gearmand=[status(b"f\t1\t0\t0")]),
        Admin("a", b"cancel this job", b"ERR UNKNOWN_ERROR\r\n"),
        Admin("a", b"cancel job", b"ERR UNKNOWN_COMMAND Unknown+server+commandcancel\r\n"),
    ),
    scenario(
        "create and drop function",
        Admin("a", b"create function abc", b"OK\r\n"),
        status(b"abc\t0\t0\t0"),
        Admin(
            "a",
            b"create",
            b"ERR INVALID_ARGUMENTS"
            b" An+incomplete+set+of+arguments+was+sent+to+this+command+create\r\n",
        ),
        send("w", T.CAN_DO, b"abc"),
        Admin("a", b"drop function ABC", STILL_USED),
        Leave("w"),
        Admin("a", b"drop function ABC", b"OK\r\n"),
        Admin("a", b"drop function abc", b"ERR function not found\r\n"),
    ),
    scenario(
        "simple admin answers",
        Admin("a", b"getpid", re.compile(rb"OK \d+\n")),
        Admin("a", b"version", re.compile(rb"OK [^\r\n]+\n")),
        Admin("a", b"verbose", re.compile(rb"OK [A-Z]+\n")),
        Admin("a", b"", b"ERR UNKNOWN_COMMAND Unknown+server+command\r\n"),
        Admin("a", b"bogus x", b"ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n"),
    ),
    scenario(
        "more than five words closes the connection",
        Admin("a", b"a b c d e", b"ERR UNKNOWN_COMMAND Unknown+server+commanda\r\n"),
        Admin("a", b"a b c d e f", CLOSED),
        Admin("other", b"status", b".\n"),
    ),
]

# -- requests that are wrong --------------------------------------------------------------

BAD_REQUESTS = [
    scenario(
        "response magic and response types",
        submit("keep", T.SUBMIT_JOB_BG, b"keep", b"", b"precious", H1),
        send("bad", T.SUBMIT_JOB, b"f", b"", b"x", magic=RES),
        recv("bad", T.ERROR, b"INVALID_MAGIC", b"Request magic expected"),
        [
            [send("bad", ptype), recv("bad", T.ERROR, b"INVALID_COMMAND", b"Command not expected")]
            for ptype in (T.JOB_CREATED, T.NO_JOB, T.NOOP, T.ECHO_RES, T.ALL_YOURS, T.UNUSED)
        ],
        send("bad", T.ECHO_REQ, b"still here"),  # the connection stays usable
        recv("bad", T.ECHO_RES, b"still here"),
        send("w", T.CAN_DO, b"keep"),  # and nothing else was touched
        grab("w", H1, b"keep", b"", b"precious"),
    ),
    scenario(
        "too few arguments",
        send("bad", T.SUBMIT_JOB, b"no-nuls-here"),
        # gearmand waits for NUL bytes that never come and desynchronises.
        differs(
            ours=[
                recv("bad", T.ERROR, b"INVALID_PACKET", b"Packet has too few arguments"),
                send("bad", T.ECHO_REQ, b"ok"),
                recv("bad", T.ECHO_RES, b"ok"),
            ],
            gearmand=[Leave("bad")],
        ),
    ),
    scenario(
        "small requests",
        send("c", T.ECHO_REQ, b"ping\0pong"),
        recv("c", T.ECHO_RES, b"ping\0pong"),
        send("c", T.OPTION_REQ, b"nosuch"),
        recv("c", T.ERROR, b"UNKNOWN_OPTION", b"Server does not recognize given option"),
        send("c", T.SET_CLIENT_ID, b"my-id"),
        send("c", T.CAN_DO, b"fn"),
        Admin("c", b"workers", re.compile(rb".* my-id : fn\n.*", re.DOTALL)),
        send("c", T.SUBMIT_JOB_SCHED, b"f", b"", b"1", b"2", b"3", b"4", b"5", b"d"),
        # gearmand never implemented SUBMIT_JOB_SCHED.
        differs(
            ours=[recv("c", T.JOB_CREATED, H1)],
            gearmand=[recv("c", T.ERROR, b"INVALID_COMMAND", b"Command not expected")],
        ),
    ),
]

# -- geartrain's extensions: nothing new reaches a peer that did not ask -------------------

UNKNOWN_OPTION = (b"UNKNOWN_OPTION", b"Server does not recognize given option")

EXTENSIONS = [
    scenario(
        "the retries extension is opt-in",
        # Its options mean nothing before OPTION_REQ "retries": answered as today.
        send("w", T.OPTION_REQ, b"retry attempts=3"),
        recv("w", T.ERROR, *UNKNOWN_OPTION),
        send("w", T.CAN_DO, b"f"),
        send("w", T.OPTION_REQ, b"retry-for attempts=3 f"),
        recv("w", T.ERROR, *UNKNOWN_OPTION),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"u1", b"1", H1),
        grab("w", H1, b"f", b"u1", b"1"),  # the same bytes from both servers
        send("w", T.WORK_FAIL, H1),
        send("x", T.OPTION_REQ, b"retries"),
        differs(
            ours=[recv("x", T.OPTION_RES, b"retries")],
            gearmand=[recv("x", T.ERROR, *UNKNOWN_OPTION)],
        ),
        send("x", T.CAN_DO, b"f"),
        submit("c", T.SUBMIT_JOB_BG, b"f", b"u2", b"2", H2),
        send("x", T.GRAB_JOB_UNIQ),
        differs(
            ours=[recv("x", T.JOB_ATTEMPT, H2, b"1", b"1")],  # attempt 1 of 1: no policy
            gearmand=[],
        ),
        recv("x", T.JOB_ASSIGN_UNIQ, H2, b"f", b"u2", b"2"),
    ),
]

SCENARIOS = [
    *ROUND_TRIPS,
    *JOBS,
    *STATUS,
    *HANDING_OUT,
    *LOST,
    *RETRIES,
    *WAKING,
    *ADMIN,
    *BAD_REQUESTS,
    *EXTENSIONS,
]

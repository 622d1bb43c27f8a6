"""The cluster's shared state in PostgreSQL: jobs, server leases, claims, fenced acks.

Tables of the cluster's own beside the queue table: ``<table>_cluster_jobs``
(every background job of the cluster, queued, waiting for a retry or running),
``<table>_cluster_servers`` (one row per running server, a lease),
``<table>_cluster_failed`` (the failed-job set), ``<table>_cluster_firings``
(one row per firing of a recurring schedule, so that it fires once) and
``<table>_cluster_paused`` (the paused functions).  Each
operation is one statement, so a batch costs one round trip and one commit.
Every plan was checked with EXPLAIN (docs/cluster.md lists them).  The column
``attempt`` holds the claim number, ``state`` a :class:`~.states.State`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from ..store.postgres import conninfo_to_asyncpg, on_standby, server_address
from ..store.records import FailedJob, KeptResult, SharedJob, SharedQuery, decode_outcomes
from . import Claimed, Failure, Orphan, Retry, Submission, cluster_handle, coalesce_key
from .states import State

__all__ = ["ERRORS", "PostgresCluster"]

log = logging.getLogger("geartrain.cluster")

WAITING, CLAIMED = int(State.WAITING), int(State.CLAIMED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {servers} (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name TEXT NOT NULL,
  started TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS {jobs} (
  id BIGSERIAL PRIMARY KEY,
  function_name BYTEA NOT NULL,
  unique_key BYTEA NOT NULL,
  coalesce_key BYTEA,
  priority SMALLINT NOT NULL,
  state SMALLINT NOT NULL DEFAULT {waiting},
  run_at TIMESTAMPTZ NOT NULL,
  owner BIGINT,
  attempt INTEGER NOT NULL DEFAULT 0,
  retries INTEGER NOT NULL DEFAULT 0,
  numerator BIGINT NOT NULL DEFAULT 0,
  denominator BIGINT NOT NULL DEFAULT 0,
  prefix BYTEA NOT NULL,
  reducer BYTEA NOT NULL,
  data BYTEA NOT NULL,
  failures INTEGER NOT NULL DEFAULT 0,
  outcomes JSONB NOT NULL DEFAULT '[]',
  retry_policy TEXT,
  keep_result DOUBLE PRECISION NOT NULL DEFAULT 0)
  WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS failures INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS outcomes JSONB NOT NULL DEFAULT '[]',
  ADD COLUMN IF NOT EXISTS retry_policy TEXT,
  ADD COLUMN IF NOT EXISTS keep_result DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS {jobs}_ready ON {jobs} (function_name, priority, run_at, id)
  WHERE state = {waiting};
CREATE INDEX IF NOT EXISTS {jobs}_owned ON {jobs} (owner) WHERE state = {claimed};
CREATE INDEX IF NOT EXISTS {jobs}_listed ON {jobs} (priority, run_at, id) WHERE state = {waiting};
CREATE UNIQUE INDEX IF NOT EXISTS {jobs}_coalesce ON {jobs} (coalesce_key, function_name)
  WHERE coalesce_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS {failed} (
  id BIGINT PRIMARY KEY,
  function_name BYTEA NOT NULL,
  unique_key BYTEA NOT NULL,
  coalesce_key BYTEA,
  priority SMALLINT NOT NULL,
  attempt INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  outcomes JSONB NOT NULL,
  prefix BYTEA NOT NULL,
  reducer BYTEA NOT NULL,
  data BYTEA NOT NULL,
  reason TEXT NOT NULL,
  failed_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS {failed}_age ON {failed} (failed_at, id);
CREATE TABLE IF NOT EXISTS {firings} (
  key BYTEA PRIMARY KEY,
  fired_at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS {firings}_age ON {firings} (fired_at);
CREATE TABLE IF NOT EXISTS {paused} (function_name BYTEA PRIMARY KEY);
CREATE TABLE IF NOT EXISTS {results} (
  handle BYTEA PRIMARY KEY,
  function_name BYTEA NOT NULL,
  status TEXT NOT NULL,
  data BYTEA NOT NULL,
  keep_seconds DOUBLE PRECISION NOT NULL,
  ended_at DOUBLE PRECISION NOT NULL,
  expires_at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS {results}_age ON {results} (expires_at);
"""

_FAILED_COLUMNS = (
    "id, function_name, unique_key, coalesce_key, priority, attempt, failures, outcomes,"
    " prefix, reducer, data, reason"
)
"""What a job takes into the failed set (a DELETE's RETURNING lists the same)."""

FIRINGS_KEPT = 86400
"""Seconds a firing is remembered: far longer than members' clocks can differ."""

ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)
"""What a lost or failing database raises."""


class PostgresCluster:
    """The statements of cluster mode over one PostgreSQL database."""

    errors = ERRORS

    def __init__(self, conninfo: str, table: str, *, timeout: float = 10.0) -> None:
        base = table[:40]
        self.jobs = f"{base}_cluster_jobs"
        self.servers = f"{base}_cluster_servers"
        self.failed = f"{base}_cluster_failed"
        self.firings = f"{base}_cluster_firings"
        self.paused_table = f"{base}_cluster_paused"
        self.results = f"{base}_cluster_results"
        self.channel = f"{base}_cluster"
        self.description = f"cluster over postgresql table {self.jobs}"
        self.timeout = timeout
        self._dsn, self._kwargs = conninfo_to_asyncpg(conninfo)
        # Submissions commit durably (JOB_CREATED follows); everything else may
        # be lost in a database crash at no cost but a rerun: claims, acks,
        # releases and leases commit without waiting for the disk.
        self._durable: asyncpg.Pool | None = None
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._sweeper: asyncpg.pool.PoolConnectionProxy | None = None
        self.primary: str | None = None
        """``host:port`` of the server the last new connection reached (several
        hosts in the conninfo: the one that takes writes)."""
        j, s, f = self.jobs, self.servers, self.failed
        # Pre-allocated ids tie each answer to its submission; a conflict on the
        # coalescing index means the job already exists: answer with its id.
        self._submit = (
            f"WITH input AS MATERIALIZED (SELECT nextval('{j}_id_seq') AS id, u.* FROM"
            " unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::smallint[], $5::bigint[],"
            " $6::bytea[], $7::bytea[], $8::int[], $11::text[], $12::float8[])"
            " AS u(fn, uniq, ckey, prio, due, reducer, data, ord, retry, keep)),"
            f" ins AS (INSERT INTO {j} (id, function_name, unique_key, coalesce_key, priority,"
            " run_at, prefix, reducer, data, retry_policy, keep_result) SELECT id, fn, uniq, ckey,"
            " prio, CASE WHEN due > 0 THEN to_timestamp(due) ELSE now() END, $9, reducer, data,"
            " retry, keep"
            f" FROM input ORDER BY ord ON CONFLICT (coalesce_key, function_name)"
            " WHERE coalesce_key IS NOT NULL DO NOTHING RETURNING id, prefix)"
            " SELECT i.ord, coalesce(ins.id, old.id), coalesce(ins.prefix, old.prefix)"
            " FROM input i LEFT JOIN ins ON ins.id = i.id"
            f" LEFT JOIN {j} old ON ins.id IS NULL AND old.function_name = i.fn"
            " AND old.coalesce_key = i.ckey"
            " CROSS JOIN (SELECT pg_notify($10, '')) AS wake"
        )
        # Oldest first within a priority, per function; the lease is checked in
        # the same statement, so a server declared dead claims nothing.  The
        # rows are updated through an id array, which keeps the planner on
        # primary-key probes (a join with the CTE could become a scan of the
        # whole table once it has many updated rows).
        self._claim = (
            "WITH c AS MATERIALIZED (SELECT j.id FROM unnest($1::bytea[], $2::int[]) AS"
            " w(name, n) CROSS JOIN LATERAL (SELECT id FROM"
            f" {j} WHERE state = {WAITING} AND function_name = w.name AND run_at <= now()"
            " ORDER BY priority, run_at, id LIMIT w.n FOR UPDATE SKIP LOCKED) j)"
            f" UPDATE {j} g SET state = {CLAIMED}, owner = $3, attempt = g.attempt + 1"
            " WHERE g.id = ANY (ARRAY(SELECT id FROM c))"
            f" AND EXISTS (SELECT 1 FROM {s} WHERE id = $3 AND expires_at > now())"
            " RETURNING g.id, g.prefix, g.function_name, g.unique_key, g.data, g.priority,"
            " g.reducer, g.attempt, g.retries, g.failures, g.outcomes,"
            " coalesce(g.retry_policy, ''), g.keep_result"
        )
        # Fenced by the claim number: a job taken over since is claimed again with
        # a higher one and is not touched.
        self._ack = (
            f"DELETE FROM {j} g USING unnest($1::bigint[], $2::int[]) AS d(id, claim)"
            " WHERE g.id = d.id AND g.attempt = d.claim RETURNING g.id"
        )
        self._release = (
            f"WITH r AS (UPDATE {j} g SET state = {WAITING}, owner = NULL, retries = d.retries,"
            " numerator = 0, denominator = 0"
            " FROM unnest($1::bigint[], $2::int[], $3::int[]) AS d(id, claim, retries)"
            f" WHERE g.id = d.id AND g.attempt = d.claim AND g.state = {CLAIMED} RETURNING g.id)"
            " SELECT count(*) FROM r CROSS JOIN (SELECT pg_notify($4, '')) AS wake"
        )
        self._progress = (
            f"UPDATE {j} g SET numerator = d.num, denominator = d.den FROM"
            " unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[]) AS d(id, claim, num, den)"
            " WHERE g.id = d.id AND g.attempt = d.claim"
        )
        self._renew = (
            f"UPDATE {s} SET expires_at = now() + make_interval(secs => $2)"
            " WHERE id = $1 AND expires_at > now() RETURNING id"
        )
        # One server at a time sweeps (an advisory lock held from orphans() to
        # swept()).  Orphans are found by their owner's lease, not by the dead
        # servers' rows: a server's row goes only once nothing claimed by it is
        # left, and a sweeper that dies leaves every orphan to the next sweep.
        self._sweep_lock = "SELECT pg_try_advisory_lock(hashtext($1))"
        self._dead = f"SELECT id FROM {s} WHERE expires_at <= now() ORDER BY id"
        self._orphans = (
            "SELECT id, attempt, owner, function_name, retries, failures, outcomes,"
            f" coalesce(retry_policy, '') FROM {j} WHERE state = {CLAIMED}"
            f" AND NOT EXISTS (SELECT 1 FROM {s} WHERE {s}.id = {j}.owner"
            f" AND {s}.expires_at > now())"
        )
        self._swept = (
            f"WITH gone AS (DELETE FROM {s} WHERE id = ANY ($1::bigint[])"
            f" AND NOT EXISTS (SELECT 1 FROM {j} WHERE state = {CLAIMED} AND owner = {s}.id))"
            " SELECT pg_advisory_unlock(hashtext($2))"
        )
        # A failed attempt: the job waits for its next one as a queued row due
        # later (a claim skips rows not yet due).
        self._retry = (
            f"WITH r AS (UPDATE {j} g SET state = {WAITING}, owner = NULL, retries = d.retries,"
            " failures = d.failures, outcomes = d.outcomes::jsonb,"
            " run_at = now() + make_interval(secs => d.delay), numerator = 0, denominator = 0"
            " FROM unnest($1::bigint[], $2::int[], $3::int[], $4::int[], $5::text[],"
            " $6::float8[]) AS d(id, claim, retries, failures, outcomes, delay)"
            f" WHERE g.id = d.id AND g.attempt = d.claim AND g.state = {CLAIMED} RETURNING g.id)"
            " SELECT count(*) FROM r CROSS JOIN (SELECT pg_notify($7, '')) AS wake"
        )
        self._fail = (
            f"WITH spent AS (DELETE FROM {j} g USING unnest($1::bigint[], $2::int[],"
            " $3::int[], $4::text[], $5::text[]) AS d(id, claim, failures, outcomes, reason)"
            f" WHERE g.id = d.id AND g.attempt = d.claim AND g.state = {CLAIMED}"
            " RETURNING g.id, g.function_name, g.unique_key, g.coalesce_key, g.priority,"
            " g.attempt, d.failures, d.outcomes::jsonb AS outcomes, g.prefix, g.reducer,"
            " g.data, d.reason)"
            f" INSERT INTO {f} ({_FAILED_COLUMNS}) SELECT {_FAILED_COLUMNS} FROM spent"
        )
        # Failed jobs chosen by id (with its handle's prefix) or by function, or all.
        chosen = (
            "($1::bigint IS NULL OR id = $1) AND ($2::bytea IS NULL OR prefix = $2)"
            " AND ($3::bytea IS NULL OR function_name = $3)"
        )
        self._failed_list = (
            "SELECT id, prefix, function_name, unique_key, data, priority, failures,"
            " extract(epoch FROM failed_at)::float8, reason, outcomes"
            f" FROM {f} WHERE {chosen} ORDER BY failed_at, id"
        )
        # Back into the queue under the same id (so the same handle), with a fresh
        # count of attempts.  The unique key goes with it unless another job of the
        # cluster (or an earlier one of this batch) took it meanwhile: then it runs
        # without coalescing, as on a single server.  (A submission of that key
        # committing during the statement makes it fail whole: nothing is lost.)
        self._retry_failed = (
            f"WITH back AS (DELETE FROM {f} WHERE {chosen} RETURNING *),"
            f" ins AS (INSERT INTO {j} (id, function_name, unique_key, coalesce_key, priority,"
            " run_at, attempt, outcomes, prefix, reducer, data)"
            " SELECT id, function_name, unique_key, CASE WHEN row_number() OVER"
            " (PARTITION BY coalesce_key, function_name ORDER BY id) = 1"
            f" AND NOT EXISTS (SELECT 1 FROM {j} o WHERE o.coalesce_key = back.coalesce_key"
            " AND o.function_name = back.function_name) THEN coalesce_key END,"
            " priority, now(), attempt, outcomes, prefix, reducer, data FROM back RETURNING id)"
            " SELECT count(*) FROM ins CROSS JOIN (SELECT pg_notify($4, '')) AS wake"
        )
        self._delete_failed = (
            f"WITH gone AS (DELETE FROM {f} WHERE {chosen} RETURNING id) SELECT count(*) FROM gone"
        )
        self._trim_failed = (
            f"WITH gone AS (DELETE FROM {f} WHERE id IN (SELECT id FROM {f}"
            " WHERE failed_at < now() - make_interval(secs => $2)"
            f" UNION ALL (SELECT id FROM {f} ORDER BY failed_at DESC, id DESC OFFSET $1))"
            " RETURNING id) SELECT count(*) FROM gone"
        )
        # The firing's row is inserted first; only the member whose insert wins
        # submits the job.  Old firings are forgotten on the way.
        self._fire = (
            f"WITH old AS (DELETE FROM {self.firings}"
            f" WHERE fired_at < now() - make_interval(secs => {FIRINGS_KEPT})),"
            f" won AS (INSERT INTO {self.firings} (key) VALUES ($1) ON CONFLICT DO NOTHING"
            " RETURNING key),"
            f" ins AS (INSERT INTO {j} (function_name, unique_key, coalesce_key, priority, run_at,"
            " prefix, reducer, data) SELECT $2, $1, $1, $3, now(), $4, $5, $6 FROM won"
            " ON CONFLICT (coalesce_key, function_name) WHERE coalesce_key IS NOT NULL"
            " DO NOTHING RETURNING id)"
            " SELECT (SELECT id FROM ins), (SELECT pg_notify($7, '') FROM ins)"
        )
        # Only a queued job: one claimed by a server is cancelled there.
        self._cancel = (
            f"WITH target AS (SELECT id, state FROM {j} WHERE id = $1 AND prefix = $2"
            " FOR UPDATE),"
            f" gone AS (DELETE FROM {j} g USING target t WHERE g.id = t.id AND t.state = {WAITING}"
            " RETURNING g.id)"
            " SELECT (SELECT count(*) FROM gone) > 0 FROM target"
        )

    # -- life -----------------------------------------------------------------

    async def open(self, on_wake: Callable[[], None]) -> None:
        self._durable = await self._connect(synchronous_commit="on")
        self._pool = await self._connect(synchronous_commit="off")
        async with self._pool.acquire() as conn, conn.transaction():
            # Servers starting together must not race on CREATE ... IF NOT EXISTS.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.jobs)
            await conn.execute(
                _SCHEMA.format(
                    jobs=self.jobs,
                    servers=self.servers,
                    failed=self.failed,
                    firings=self.firings,
                    paused=self.paused_table,
                    results=self.results,
                    waiting=WAITING,
                    claimed=CLAIMED,
                )
            )
        await self.listen(on_wake)

    async def _connect(self, synchronous_commit: str) -> asyncpg.Pool:
        kwargs = dict(self._kwargs)
        # force_custom_plan: generic plans of these statements over unnest() arrays
        # can be far worse than planning each one (as in store/postgres.py).
        settings = {
            "synchronous_commit": synchronous_commit,
            "plan_cache_mode": "force_custom_plan",
            "application_name": "geartrain",
        }
        settings.update(kwargs.pop("server_settings", {}))
        kwargs.setdefault("timeout", 5.0)
        return await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=2,
            command_timeout=self.timeout,
            server_settings=settings,
            init=self._connected,
            **kwargs,
        )

    async def _connected(self, conn: asyncpg.Connection) -> None:
        address = await server_address(conn)
        if address != self.primary:
            if self.primary is not None:
                log.warning("Cluster store: writing to %s now (was %s)", address, self.primary)
            self.primary = address

    async def listen(self, on_wake: Callable[[], None]) -> None:
        """LISTEN on a connection of its own (a pooled one would lose it)."""
        await self._close_listener()
        conn = await asyncpg.connect(self._dsn, **{"timeout": 5.0, **self._kwargs})
        await conn.add_listener(self.channel, lambda *_args: on_wake())
        self._listener = conn

    @property
    def listening(self) -> bool:
        return self._listener is not None and not self._listener.is_closed()

    async def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        await self._close_listener()
        self._sweeper = None  # terminated with its pool
        pools, self._pool, self._durable = (self._pool, self._durable), None, None
        for pool in pools:
            if pool is not None:
                pool.terminate()

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise ConnectionError("cluster store is closed")
        return self._pool

    def _durable_pool(self) -> asyncpg.Pool:
        if self._durable is None:
            raise ConnectionError("cluster store is closed")
        return self._durable

    # -- leases ---------------------------------------------------------------

    async def register(self, name: str, ttl: float) -> int:
        row = await self._p().fetchrow(
            f"INSERT INTO {self.servers} (name, expires_at)"
            " VALUES ($1, now() + make_interval(secs => $2)) RETURNING id",
            name,
            ttl,
        )
        return int(row[0])

    async def renew(self, server: int, ttl: float) -> bool:
        try:
            return await self._p().fetchval(self._renew, server, ttl) is not None
        except asyncpg.PostgresError as error:
            if on_standby(error):
                # Sessions on a server that no longer takes writes: new ones find the
                # primary (the heartbeat is the one call that comes back for sure).
                for pool in (self._pool, self._durable):
                    if pool is not None:
                        await pool.expire_connections()
                await self._close_listener()
            raise

    async def leave(self, server: int) -> None:
        await self._p().execute(f"DELETE FROM {self.servers} WHERE id = $1", server)

    async def orphans(self, ttl: float) -> tuple[list[int], list[Orphan]] | None:
        """Take the sweep (until :meth:`swept`, or until this connection is lost:
        ``ttl`` is for stores without sessions): the servers whose lease
        expired, and every job claimed by a server that is not alive."""
        await self.swept(())  # a sweep whose caller gave up on it (a deadline) ends first
        pool = self._p()
        conn = await pool.acquire()
        try:
            if await conn.fetchval(self._sweep_lock, self.servers):
                dead = [int(r[0]) for r in await conn.fetch(self._dead)]
                rows = await conn.fetch(self._orphans)
                self._sweeper = conn  # held, with the lock, until swept()
                orphans = [Orphan(r[0], r[1], r[2], bytes(r[3]), *r[4:]) for r in rows]
                return dead, orphans
        except BaseException:
            conn.terminate()  # the lock, if taken, goes with the session
            raise
        finally:
            if self._sweeper is not conn:
                await pool.release(conn)
        return None

    async def swept(self, dead: Sequence[int]) -> None:
        conn, self._sweeper = self._sweeper, None
        if conn is None:
            return
        try:
            await conn.fetchval(self._swept, list(dead), self.servers)
        except BaseException:
            conn.terminate()
            raise
        finally:
            await self._p().release(conn)

    # -- jobs -----------------------------------------------------------------

    async def submit(self, jobs: Sequence[Submission], prefix: bytes) -> list[tuple[int, bytes]]:
        """Insert or coalesce each job; its (id, handle prefix) in order."""
        keys = [coalesce_key(s.unique, s.data) for s in jobs]
        rows = await self._durable_pool().fetch(
            self._submit,
            [s.function for s in jobs],
            [s.unique for s in jobs],
            keys,
            [s.priority for s in jobs],
            [s.when for s in jobs],
            [s.reducer for s in jobs],
            [s.data for s in jobs],
            list(range(len(jobs))),
            prefix,
            self.channel,
            [s.retry or None for s in jobs],
            [s.keep for s in jobs],
        )
        answers: list[tuple[int, bytes] | None] = [None] * len(jobs)
        for ord_, id_, pre in rows:
            if id_ is not None:
                answers[ord_] = (int(id_), bytes(pre))
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            # Coalesced with a job committed (or finished) while this statement
            # ran, or with another job of this batch: ask again.
            again = await self.submit([jobs[i] for i in missing], prefix)
            for i, answer in zip(missing, again, strict=True):
                answers[i] = answer
        return [a for a in answers if a is not None]

    async def claim(self, server: int, wants: Sequence[tuple[bytes, int]]) -> list[Claimed]:
        rows = await self._p().fetch(
            self._claim, [w[0] for w in wants], [w[1] for w in wants], server
        )
        return [Claimed(*row) for row in rows]

    # PostgreSQL fences by the claim number alone (``owners`` is for Redis): its
    # ids are never handed out again.

    async def claimed(self, server: int) -> list[tuple[int, int, int]]:
        rows = await self._p().fetch(
            f"SELECT id, attempt, retries FROM {self.jobs} WHERE state = {CLAIMED} AND owner = $1",
            server,
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def ack(self, done: Sequence[tuple[int, int]], owners: Sequence[int] = ()) -> set[int]:
        """Delete finished jobs still at the given claim; the ids deleted."""
        rows = await self._p().fetch(self._ack, [d[0] for d in done], [d[1] for d in done])
        return {int(r[0]) for r in rows}

    async def release(self, jobs: Sequence[tuple[int, int, int]]) -> None:
        """(id, claim, retries): queue again jobs this server gives back."""
        await self._p().fetchval(
            self._release,
            [j[0] for j in jobs],
            [j[1] for j in jobs],
            [j[2] for j in jobs],
            self.channel,
        )

    async def progress(self, jobs: Sequence[tuple[int, int, int, int]]) -> None:
        """(id, claim, numerator, denominator) of running jobs, for GET_STATUS elsewhere."""
        await self._p().execute(self._progress, *(list(c) for c in zip(*jobs, strict=True)))

    async def retry(self, jobs: Sequence[Retry], owners: Sequence[int] = ()) -> None:
        """Failed attempts of claimed jobs: each is queued again, due ``delay``
        seconds from now, with its counts and outcomes; fenced by the claim."""
        await self._p().fetchval(self._retry, *_columns(jobs, 6), self.channel)

    async def fail(self, jobs: Sequence[Failure], owners: Sequence[int] = ()) -> None:
        """Claimed jobs that failed for good: each moves to the failed set (its
        unique key no longer coalesces); fenced by the claim."""
        await self._p().execute(self._fail, *_columns(jobs, 5))

    async def fire(self, key: bytes, job: Submission, prefix: bytes) -> int | None:
        """One firing of a recurring schedule, ``key`` naming the schedule and the
        minute (it is also the job's unique key): the id of the job submitted,
        or None if another server fired it first."""
        row = await self._durable_pool().fetchrow(
            self._fire, key, job.function, job.priority, prefix, job.reducer, job.data, self.channel
        )
        return None if row is None or row[0] is None else int(row[0])

    async def cancel(self, job_id: int, prefix: bytes) -> bool | None:
        """Delete a queued job (``cancel job``): True if deleted, False if a server
        has claimed it (it is cancelled there), None if there is no such job."""
        value = await self._p().fetchval(self._cancel, job_id, prefix)
        return None if value is None else bool(value)

    # -- the failed-job set -------------------------------------------------------

    async def failed_jobs(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> list[FailedJob]:
        """The failed set, oldest first: one job (by id and handle prefix), one
        function's, or all."""
        rows = await self._p().fetch(self._failed_list, job_id, prefix, function)
        return [
            FailedJob(
                cluster_handle(bytes(r[1]), r[0]),
                bytes(r[2]),
                bytes(r[3]),
                bytes(r[4]),
                r[5],
                r[6],
                r[7],
                r[8],
                decode_outcomes(r[9]),
            )
            for r in rows
        ]

    async def retry_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        """Queue failed jobs again (chosen as for :meth:`failed_jobs`) under their
        old handles, with a fresh count of attempts; how many."""
        return int(
            await self._durable_pool().fetchval(
                self._retry_failed, job_id, prefix, function, self.channel
            )
        )

    async def delete_failed(
        self, job_id: int | None = None, prefix: bytes | None = None, function: bytes | None = None
    ) -> int:
        """Drop failed jobs (chosen as for :meth:`failed_jobs`); how many."""
        return int(await self._p().fetchval(self._delete_failed, job_id, prefix, function))

    async def trim_failed(self, max_jobs: int, max_age: float) -> int:
        """Bound the failed set: drop the oldest beyond ``max_jobs`` and those older
        than ``max_age`` seconds; how many were dropped."""
        return int(await self._p().fetchval(self._trim_failed, max_jobs, max_age))

    async def failed_counts(self) -> dict[bytes, int]:
        """The failed set's size per function (for metrics)."""
        rows = await self._p().fetch(
            f"SELECT function_name, count(*) FROM {self.failed} GROUP BY function_name"
        )
        return {bytes(r[0]): r[1] for r in rows}

    # -- paused functions -------------------------------------------------------

    async def paused(self) -> list[bytes]:
        rows = await self._p().fetch(f"SELECT function_name FROM {self.paused_table} ORDER BY 1")
        return [bytes(r[0]) for r in rows]

    async def set_paused(self, name: bytes, paused: bool) -> None:
        t = self.paused_table
        if paused:
            query = f"INSERT INTO {t} VALUES ($1) ON CONFLICT DO NOTHING"
        else:
            query = f"DELETE FROM {t} WHERE function_name = $1"
        await self._durable_pool().execute(query, name)

    # -- kept results ---------------------------------------------------------------

    async def write_results(self, added: Sequence[KeptResult], removed: Sequence[bytes]) -> None:
        r = self.results
        async with self._p().acquire() as conn, conn.transaction():
            if removed:
                await conn.execute(f"DELETE FROM {r} WHERE handle = ANY($1::bytea[])", removed)
            if added:
                await conn.executemany(
                    f"INSERT INTO {r} VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (handle) DO UPDATE SET function_name = EXCLUDED.function_name,"
                    " status = EXCLUDED.status, data = EXCLUDED.data,"
                    " keep_seconds = EXCLUDED.keep_seconds, ended_at = EXCLUDED.ended_at,"
                    " expires_at = EXCLUDED.expires_at",
                    [(*k, k.expires_at) for k in added],
                )

    async def result(self, handle: bytes) -> KeptResult | None:
        row = await self._p().fetchrow(
            "SELECT handle, function_name, status, data, keep_seconds, ended_at"
            f" FROM {self.results} WHERE handle = $1",
            handle,
        )
        return None if row is None else KeptResult(*row)

    async def trim_results(self, now: float) -> int:
        done = await self._p().execute(f"DELETE FROM {self.results} WHERE expires_at <= $1", now)
        return int(done.split()[-1])

    # -- status -----------------------------------------------------------------

    async def status(self, job_id: int) -> tuple[bytes, State, int, int] | None:
        """(handle prefix, state, numerator, denominator) of a job, or None."""
        row = await self._p().fetchrow(
            f"SELECT prefix, state, numerator, denominator FROM {self.jobs} WHERE id = $1", job_id
        )
        return None if row is None else (bytes(row[0]), State(row[1]), row[2], row[3])

    async def status_unique(self, unique: bytes) -> tuple[State, int, int] | None:
        """(state, numerator, denominator) of the job with this unique key, or None."""
        row = await self._p().fetchrow(
            f"SELECT state, numerator, denominator FROM {self.jobs}"
            " WHERE coalesce_key = $1 ORDER BY id LIMIT 1",
            unique,
        )
        return None if row is None else (State(row[0]), row[1], row[2])

    async def queues(self) -> list[tuple[bytes, int, int]]:
        """(function, jobs, running) over the whole cluster."""
        rows = await self._p().fetch(
            f"SELECT function_name, count(*), count(*) FILTER (WHERE state = {CLAIMED})"
            f" FROM {self.jobs} GROUP BY function_name ORDER BY function_name"
        )
        return [(bytes(r[0]), r[1], r[2]) for r in rows]

    async def members(self) -> list[tuple[int, str, float, float, int]]:
        """(id, name, seconds since start, seconds left on the lease, running jobs)."""
        rows = await self._p().fetch(
            "SELECT s.id, s.name, extract(epoch FROM now() - s.started)::float8,"
            " extract(epoch FROM s.expires_at - now())::float8,"
            f" (SELECT count(*) FROM {self.jobs} j WHERE j.state = {CLAIMED} AND j.owner = s.id)"
            f" FROM {self.servers} s ORDER BY s.id"
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # -- the console's lists ------------------------------------------------------

    async def list_jobs(self, query: SharedQuery) -> tuple[int, bool, list[SharedJob]]:
        """Queued jobs in claim order ({jobs}_ready with a function, {jobs}_listed
        without); claimed jobs from {jobs}_owned.  The count is an index-only scan;
        a text filter looks at the first ``scan`` jobs in order, no more."""
        where, args = _listed(query)
        if query.state in ("scheduled", "retrying"):
            order = "run_at, id" if query.by_due else "id DESC" if query.newest else "id"
        else:
            order = (
                "priority DESC, run_at DESC, id DESC" if query.newest else "priority, run_at, id"
            )
        j, n = self.jobs, len(args)
        async with self._p().acquire() as conn:
            if query.text is None:
                total = await conn.fetchval(f"SELECT count(*) FROM {j} WHERE {where}", *args)
                rows = await conn.fetch(
                    f"SELECT {_shared_columns(n + 3)} FROM {j} WHERE {where} ORDER BY {order}"
                    f" OFFSET ${n + 1} LIMIT ${n + 2}",
                    *args,
                    query.offset,
                    query.limit,
                    query.preview,
                )
                return total, True, [_shared(r) for r in rows]
            total, exact, ids = await conn.fetchrow(
                f"WITH looked AS MATERIALIZED (SELECT id, row_number() OVER (ORDER BY {order})"
                f" AS n, position(${n + 1}::bytea IN substring(data FROM 1 FOR ${n + 5})) > 0"
                f" AS hit FROM {j} WHERE {where} ORDER BY {order} LIMIT ${n + 2} + 1),"
                f" found AS (SELECT id, n FROM looked WHERE hit AND n <= ${n + 2})"
                f" SELECT (SELECT count(*) FROM found), (SELECT count(*) FROM looked) <= ${n + 2},"
                f" ARRAY(SELECT id FROM found ORDER BY n OFFSET ${n + 3} LIMIT ${n + 4})",
                *args,
                query.text,
                query.scan,
                query.offset,
                query.limit,
                query.preview,
            )
            found = await conn.fetch(
                f"SELECT {_shared_columns(2)} FROM {j} WHERE id = ANY($1::bigint[])",
                ids,
                query.preview,
            )
        by_id = {r[0]: r for r in found}
        return total, exact, [_shared(by_id[i]) for i in ids if i in by_id]

    async def job(self, job_id: int, prefix: bytes, preview: int) -> SharedJob | None:
        row = await self._p().fetchrow(
            f"SELECT {_shared_columns(3)} FROM {self.jobs} WHERE id = $1 AND prefix = $2",
            job_id,
            prefix,
            preview,
        )
        return None if row is None else _shared(row)


def _shared_columns(preview: int) -> str:
    """A listed job's columns; parameter ``$preview`` is how much of its payload."""
    return (
        f"id, prefix, function_name, unique_key, priority, substring(data FROM 1 FOR ${preview}),"
        " length(data), state, extract(epoch FROM run_at)::float8, coalesce(owner, 0), failures,"
        " numerator, denominator, outcomes"
    )


_STATES = {
    "queued": f"state = {WAITING} AND run_at <= now()",
    "running": f"state = {CLAIMED}",
    "scheduled": f"state = {WAITING} AND run_at > now() AND failures = 0",
    "retrying": f"state = {WAITING} AND run_at > now() AND failures > 0",
}


def _listed(query: SharedQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of a list and its parameters (``$1`` on)."""
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = [_STATES[query.state]]
    if query.function is not None:
        where.append(f"function_name = {arg(query.function)}")
    if query.priority is not None:
        where.append(f"priority = {arg(query.priority)}")
    if query.unique is not None:
        # The coalescing index finds it: the key is the unique key itself (but for "-").
        where.append(f"coalesce_key = {arg(query.unique)} AND unique_key = coalesce_key")
    return " AND ".join(where), args


def _shared(row: Any) -> SharedJob:
    job_id, prefix, function, unique, priority, data, size, state, due, owner, *rest = row
    failures, numerator, denominator, outcomes = rest
    return SharedJob(
        cluster_handle(bytes(prefix), job_id),
        bytes(function),
        bytes(unique),
        priority,
        bytes(data),
        size,
        state == CLAIMED,
        due,
        owner,
        failures,
        numerator,
        denominator,
        decode_outcomes(outcomes),
    )


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """A batch of tuples as ``width`` column arrays, for ``unnest``."""
    return [[row[i] for row in rows] for i in range(width)]

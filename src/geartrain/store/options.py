"""The command-line side of the queue: gearmand's flags, and the store they pick.

``-q``/``--queue-type`` and each backend's options are spelled exactly as
gearmand 1.1 spells them, so a gearmand command line keeps working.  Two
departures: with no ``-q`` geartrain keeps its queue in a SQLite file in the
user's state directory (gearmand keeps none), and ``--store-url`` names any
backend in one URL.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import urllib.parse
from pathlib import Path
from typing import Any

from . import STORES, Store, store_class
from .durability import DEFAULT, Durability
from .names import LIBPQ_TABLE, MYSQL_TABLE, REDIS_PREFIX, SQLITE_TABLE

__all__ = [
    "QUEUE_FILE",
    "add_store_arguments",
    "chosen_durability",
    "default_state_dir",
    "describe_store",
    "store_from_args",
    "store_from_url",
]

log = logging.getLogger(__name__)

QUEUE_FILE = "queue.sqlite3"
"""The default queue's file name inside the state directory."""

_MEMORY = ("builtin", "memory", "none")


def default_state_dir(home: Path | None = None) -> Path:
    """geartrain's state dir: ``$XDG_STATE_HOME/geartrain`` or ``~/.local/state/geartrain``;
    for another user's ``home`` (``--user``), ``HOME/.local/state/geartrain`` (the
    environment describes the user who started the server)."""
    base = os.environ.get("XDG_STATE_HOME", "") if home is None else ""
    # The XDG spec says to ignore a relative value.
    root = Path(base) if os.path.isabs(base) else (home or Path.home()) / ".local" / "state"
    return root / "geartrain"


def _port(text: str) -> int:
    """A port number or a service name (gearmand's ``--redis-port`` takes either)."""
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise argparse.ArgumentTypeError(f"unknown port or service {text!r}") from None


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``-q`` and the queue backends' options (gearmand's names) to ``parser``."""
    names = ", ".join(["builtin", *STORES])
    parser.add_argument(
        "-q",
        "--queue-type",
        metavar="TYPE",
        help=f"Persistent queue type to use: {names} (any case). Default: a SQLite file in"
        f" the state directory ($XDG_STATE_HOME/geartrain/{QUEUE_FILE}); builtin keeps the"
        " queue in memory only.",
    )
    parser.add_argument(
        "--store-url",
        metavar="URL",
        help="The queue as one URL instead of -q and its options: sqlite:///PATH,"
        " postgresql://... (several hosts: postgresql://H1:P1,H2:P2/DB?target_session_attrs="
        "read-write), mysql://USER:PASS@HOST:PORT/DB, redis://[:PASS@]HOST:PORT/DB,"
        " redis+sentinel://[:PASS@]SENTINEL:PORT,SENTINEL:PORT/MASTER?db=N, builtin:."
        " Add ?table=NAME (SQL) or ?prefix=P (redis), and for redis ?wait_replicas=N"
        "&wait_timeout_ms=MS to wait for replicas after each write.",
    )
    parser.add_argument(
        "--durability",
        choices=[level.value for level in Durability],
        help="What an acknowledged background job survives: crash (the default with a"
        " durable queue: a crash or kill -9 of the server; the store is fsynced every"
        " second in the background), power (power loss: fsync before JOB_CREATED) or"
        " memory (nothing; the same as -q builtin).",
    )
    group = parser.add_argument_group("libsqlite3")
    group.add_argument("--libsqlite3-db", metavar="FILE", help="Database file to use.")
    group.add_argument(
        "--libsqlite3-table", metavar="TABLE", default=SQLITE_TABLE, help="Table to use."
    )
    group.add_argument(
        "--store-queue-on-shutdown",
        action="store_true",
        help="Accepted for gearmand compatibility; geartrain always stores each job"
        " when it is acknowledged.",
    )
    group = parser.add_argument_group("libpq (PostgreSQL)")
    group.add_argument(
        "--libpq-conninfo",
        metavar="CONNINFO",
        default="",
        help="PostgreSQL connection information string (host=... dbname=...) or URL.",
    )
    group.add_argument("--libpq-table", metavar="TABLE", default=LIBPQ_TABLE, help="Table to use.")
    group = parser.add_argument_group("MySQL / MariaDB")
    group.add_argument("--mysql-host", metavar="HOST", default="localhost", help="MySQL host.")
    group.add_argument("--mysql-port", metavar="PORT", type=_port, default=3306, help="Port.")
    group.add_argument("--mysql-user", metavar="USER", default="", help="MySQL user.")
    group.add_argument("--mysql-password", metavar="PASS", default="", help="MySQL password.")
    group.add_argument("--mysql-db", metavar="DB", default="", help="MySQL database.")
    group.add_argument(
        "--mysql-table", metavar="TABLE", default=MYSQL_TABLE, help="MySQL table name."
    )
    group = parser.add_argument_group("redis")
    group.add_argument("--redis-server", metavar="HOST", default="127.0.0.1", help="Redis server.")
    group.add_argument(
        "--redis-port", metavar="PORT", type=_port, default=6379, help="Redis port or service."
    )
    group.add_argument("--redis-password", metavar="PASS", default="", help="Redis password.")
    group.add_argument(
        "--redis-prefix", metavar="PREFIX", default=REDIS_PREFIX, help="Prefix of the redis keys."
    )


def _is_memory(ns: argparse.Namespace) -> bool:
    """The queue named is the memory one (-q builtin, --store-url builtin:)."""
    if ns.store_url:
        return urllib.parse.urlsplit(ns.store_url).scheme.lower() in _MEMORY
    return (ns.queue_type or "libsqlite3").lower() in _MEMORY


def chosen_durability(ns: argparse.Namespace) -> Durability:
    """The level that ``--durability`` and the queue flags ask for together.

    Raises:
        ValueError: a level that the chosen queue cannot give.
    """
    memory = _is_memory(ns)
    if ns.durability is None:
        return Durability.MEMORY if memory else DEFAULT
    level = Durability(ns.durability)
    if memory and level is not Durability.MEMORY:
        raise ValueError(f"--durability {level} needs a durable queue, not -q builtin")
    if not memory and level is Durability.MEMORY and (ns.queue_type or ns.store_url):
        raise ValueError("--durability memory keeps no queue: drop -q/--store-url or the level")
    return level


def store_from_args(ns: argparse.Namespace, state_dir: Path | None = None) -> Store | None:
    """Build the store the parsed options ask for (not yet opened).

    Args:
        ns: options parsed by a parser that went through :func:`add_store_arguments`.
        state_dir: where the default SQLite queue lives; :func:`default_state_dir` if None.

    Returns:
        The store, or None for ``-q builtin`` or ``--durability memory`` (the
        queue is in memory only).

    Raises:
        ValueError: an unknown queue type, a missing driver, or options that do not fit.
    """
    level = chosen_durability(ns)
    if level is Durability.MEMORY:
        return None
    if ns.store_queue_on_shutdown:
        log.info(
            "--store-queue-on-shutdown has no effect: every background job is stored when"
            " it is acknowledged, so the queue is already stored at shutdown"
        )
    if ns.store_url:
        if ns.queue_type:
            raise ValueError("give either -q or --store-url, not both")
        return store_from_url(ns.store_url, level)
    kind = (ns.queue_type or "libsqlite3").lower()
    if kind in _MEMORY:
        return None
    if kind not in STORES:
        known = ", ".join(["builtin", *STORES])
        raise ValueError(f"unknown queue type {ns.queue_type!r} (known: {known})")
    module = STORES[kind].partition(":")[0]
    args: tuple[Any, ...]
    if module == ".sqlite":
        args = (
            ns.libsqlite3_db or (state_dir or default_state_dir()) / QUEUE_FILE,
            ns.libsqlite3_table,
        )
    elif module == ".postgres":
        args = (ns.libpq_conninfo, ns.libpq_table)
    elif module == ".mysql":
        if not ns.mysql_db:
            raise ValueError("-q mysql needs --mysql-db")
        args = (
            ns.mysql_host,
            ns.mysql_port,
            ns.mysql_user,
            ns.mysql_password,
            ns.mysql_db,
            ns.mysql_table,
        )
    else:
        args = (ns.redis_server, ns.redis_port, ns.redis_password, ns.redis_prefix)
    store: Store = _load(kind)(*args, durability=level)
    return store


def describe_store(ns: argparse.Namespace, store: Store | None) -> str:
    """One line for the startup log: where the queue is, never a password."""
    level = chosen_durability(ns)
    if store is None:
        return f"memory only (-q builtin): {level.promise}"
    return f"{store}; durability {level}: {level.promise}"


_EXTRAS = {".postgres": "postgres", ".mysql": "mysql", ".redis": "redis"}


def _load(kind: str) -> Any:
    """The backend class, with a hint when its driver (an optional extra) is missing."""
    try:
        return store_class(kind)
    except ImportError as exc:
        extra = _EXTRAS.get(STORES[kind].partition(":")[0], "all")
        raise ValueError(
            f"the {kind} queue needs {exc.name}: pip install 'geartrain[{extra}]' "
            f"(from a source checkout: pip install '.[{extra}]')"
        ) from exc


def store_from_url(url: str, durability: Durability = DEFAULT) -> Store | None:
    """Build a store from one URL (see ``--store-url``); None for ``builtin:``.

    Raises:
        ValueError: an unknown scheme, a missing driver or a malformed URL.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(urllib.parse.parse_qsl(parts.query))
    table = query.pop("table", None)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    if scheme in _MEMORY:
        return None
    if scheme in ("sqlite", "sqlite3", "libsqlite3"):
        path = urllib.parse.unquote(parts.netloc + parts.path)
        if not path:
            raise ValueError(f"no file in {url!r}; use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE")
        return _load("sqlite")(  # type: ignore[no-any-return]
            path, table or SQLITE_TABLE, durability=durability
        )
    if scheme in ("postgres", "postgresql"):
        rest = urllib.parse.urlencode(query)
        conninfo = urllib.parse.urlunsplit(parts._replace(query=rest))
        return _load("postgres")(  # type: ignore[no-any-return]
            conninfo, table or LIBPQ_TABLE, durability=durability
        )
    if scheme in ("mysql", "mariadb"):
        db = parts.path.lstrip("/")
        if not db:
            raise ValueError(f"no database in {url!r}; use mysql://USER:PASS@HOST:PORT/DB")
        host, port = parts.hostname or "localhost", parts.port or 3306
        return _load("mysql")(  # type: ignore[no-any-return]
            host, port, user, password, db, table or MYSQL_TABLE, durability=durability
        )
    if scheme == "redis":
        return _load("redis")(  # type: ignore[no-any-return]
            parts.hostname or "127.0.0.1",
            parts.port or 6379,
            password,
            query.get("prefix", REDIS_PREFIX),
            db=int(parts.path.lstrip("/") or 0),
            username=user or None,
            durability=durability,
            **_waiting(query, url),
        )
    if scheme == "redis+sentinel":
        service = urllib.parse.unquote(parts.path.strip("/"))
        if not service:
            raise ValueError(f"no master name in {url!r}; use redis+sentinel://H:P,H:P/MASTER")
        return _load("redis")(  # type: ignore[no-any-return]
            password=password,
            prefix=query.get("prefix", REDIS_PREFIX),
            db=_number(query, "db", 0, url),
            username=user or None,
            durability=durability,
            sentinels=_hosts(parts.netloc.rpartition("@")[2], 26379, url),
            service=service,
            **_waiting(query, url),
        )
    raise ValueError(f"unknown queue URL scheme {parts.scheme!r} in {url!r}")


def _hosts(text: str, default_port: int, url: str) -> list[tuple[str, int]]:
    """``h1:p1,h2:p2`` (ports optional) as (host, port) pairs."""
    hosts = []
    for item in text.split(","):
        host, sep, port = item.rpartition(":") if ":" in item else (item, "", "")
        if not host or (sep and not port.isdigit()):
            raise ValueError(f"bad host {item!r} in {url!r}; use HOST:PORT,HOST:PORT")
        hosts.append((host, int(port) if port else default_port))
    return hosts


def _number(query: dict[str, str], name: str, default: int, url: str) -> int:
    text = query.get(name, str(default))
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number, not {text!r}, in {url!r}")
    return int(text)


def _waiting(query: dict[str, str], url: str) -> dict[str, int]:
    """``?wait_replicas=N&wait_timeout_ms=MS``: WAIT after each write."""
    return {
        "wait_replicas": _number(query, "wait_replicas", 0, url),
        "wait_timeout_ms": _number(query, "wait_timeout_ms", 1000, url),
    }

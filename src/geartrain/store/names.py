"""The names a store uses: gearmand's defaults (here so that the command line can
show them without importing the database drivers, which are optional extras), and
the check that a table name is safe to put into SQL text."""

from __future__ import annotations

import re

__all__ = ["LIBPQ_TABLE", "MYSQL_TABLE", "REDIS_PREFIX", "SQLITE_TABLE", "check_identifier"]

SQLITE_TABLE = "gearman_queue"
LIBPQ_TABLE = "queue"
MYSQL_TABLE = "gearman_queue"
REDIS_PREFIX = "_gear_"

# Table names go into SQL text (they cannot be parameters), so only plain
# identifiers are accepted.  63 bytes is PostgreSQL's limit and the smallest.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: str, what: str = "table name") -> str:
    """Return ``name`` if it is a plain SQL identifier.

    Raises:
        ValueError: ``name`` has other characters or is too long.
    """
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits and _ (at most 63, not starting"
            " with a digit)"
        )
    return name

"""A retry policy declared in code, and the words it travels in.

A :class:`Retry` is what a worker declares for a function
(``worker.register("f", retry=Retry(attempts=3))``) or a client for one
submission (``client.submit("f", data, retry=...)``).  It goes to the server in
geartrain's retries extension (an OPTION_REQ, see docs/compatibility.md) as a
short text, ``attempts=3;on=exception,fail;backoff=1.0;cap=3600.0;jitter=0.25``;
this module is both ends of that text, so the libraries and the server read it
alike.  Which policy wins where several apply is the server's rule
(:meth:`geartrain.server.policies.Policies.for_job`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["OPTION", "OUTCOMES", "Retry", "option", "read_option", "storable", "stored"]

OPTION = b"retries"
"""The OPTION_REQ that asks a server for the retries extension (gearmand answers
ERROR UNKNOWN_OPTION): the server then tells a worker each job's attempt
(JOB_ATTEMPT) and takes the options :func:`option` makes."""

OUTCOMES = ("fail", "exception", "worker_lost", "timeout")
"""The ways an attempt can fail: WORK_FAIL, WORK_EXCEPTION, a worker that left or
dropped the function while running the job, a CAN_DO_TIMEOUT that ran out."""

_KEYS = ("attempts", "on", "backoff", "cap", "jitter")


@dataclass(frozen=True, slots=True)
class Retry:
    """How often a job is tried, and how long the server waits in between.

    Args:
        attempts: attempts in all, the first included (1: no retry).
        on: the outcomes that are retried (see :data:`OUTCOMES`); all of them
            unless given: a job is tried again whatever went wrong.
        backoff: seconds before the first retry; each further one waits twice
            as long.
        backoff_cap: the longest wait, in seconds.
        jitter: up to this fraction of each wait is added at random.

    Raises:
        ValueError: a value out of range or an unknown outcome.
    """

    attempts: int = 3
    on: Collection[str] = frozenset(OUTCOMES)
    backoff: float = 1.0
    backoff_cap: float = 3600.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        on = (self.on,) if isinstance(self.on, str) else self.on
        try:
            outcomes = frozenset(on)
        except TypeError:
            raise ValueError(f"retry on: a list of {', '.join(OUTCOMES)}, not {on!r}") from None
        unknown = sorted(outcomes.difference(OUTCOMES))
        if unknown:
            known = ", ".join(OUTCOMES)
            raise ValueError(f"retry on: unknown outcome {unknown[0]!r} (known: {known})")
        object.__setattr__(self, "on", outcomes)
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ValueError(f"retry attempts must be a whole number, not {self.attempts!r}")
        if not 1 <= self.attempts <= 1000:
            raise ValueError(f"retry attempts must be between 1 and 1000, not {self.attempts}")
        for name, value, top in (
            ("backoff", self.backoff, 86400.0 * 365),
            ("backoff_cap", self.backoff_cap, 86400.0 * 365),
            ("jitter", self.jitter, 1.0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"retry {name} must be a number, not {value!r}")
            if not (math.isfinite(value) and 0 <= value <= top):
                raise ValueError(f"retry {name} must be between 0 and {top:g}, not {value!r}")
            object.__setattr__(self, name, float(value))

    def to_text(self) -> bytes:
        """The policy as the extension sends it."""
        on = ",".join(o for o in OUTCOMES if o in self.on)
        return (
            f"attempts={self.attempts};on={on};backoff={self.backoff!r};"
            f"cap={self.backoff_cap!r};jitter={self.jitter!r}"
        ).encode()

    @classmethod
    def from_text(cls, text: bytes) -> Retry:
        """Read :meth:`to_text`'s words; keys not given keep their defaults.

        Raises:
            ValueError: a malformed text, an unknown key or a bad value, in one line.
        """
        try:
            words = text.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("retry policy: not ASCII text") from None
        given: dict[str, str] = {}
        for word in words.split(";") if words else ():
            key, sep, value = word.partition("=")
            if not sep or key not in _KEYS or key in given:
                raise ValueError(f"retry policy: bad or repeated key in {word[:40]!r}")
            given[key] = value
        try:
            on = given.get("on")
            return cls(
                attempts=int(given.get("attempts", "3")),
                on=OUTCOMES if on is None else on.split(",") if on else (),
                backoff=float(given.get("backoff", "1")),
                backoff_cap=float(given.get("cap", "3600")),
                jitter=float(given.get("jitter", "0.25")),
            )
        except ValueError as error:
            message = str(error)
            raise ValueError(
                message if message.startswith("retry") else f"retry policy: {message}"
            ) from None


def option(retry: Retry, function: bytes | None = None) -> bytes:
    """The OPTION_REQ text that declares ``retry`` for the connection's next
    submission (``retry POLICY``), or for a registered ``function``
    (``retry-for POLICY FUNCTION``)."""
    if function is None:
        return b"retry " + retry.to_text()
    return b"retry-for " + retry.to_text() + b" " + function


def read_option(text: bytes) -> tuple[Retry, bytes | None] | None:
    """What :func:`option` made: the policy and the function (None: the next
    submission); None if ``text`` is no retry option.

    Raises:
        ValueError: a retry option with a bad policy or no function name.
    """
    word, _, rest = text.partition(b" ")
    if word == b"retry":
        return Retry.from_text(rest), None
    if word != b"retry-for":
        return None
    policy, _, function = rest.partition(b" ")
    if not function:
        raise ValueError("retry-for: the function name is missing")
    return Retry.from_text(policy), function


def storable(retry: Retry | None) -> str:
    """A submission's policy as the stores keep it: its words (:meth:`Retry.to_text`),
    or empty for none; :func:`stored` reads it back."""
    return "" if retry is None else retry.to_text().decode()


@functools.lru_cache(maxsize=64)
def stored(text: str | bytes | None) -> Retry | None:
    """A submission's policy as a store kept it (:meth:`Retry.to_text`'s words,
    empty or NULL for none); words that no longer read give None (the
    function's policy then applies), so a store's row never stops a restore."""
    if not text:
        return None
    try:
        return Retry.from_text(text.encode() if isinstance(text, str) else text)
    except (ValueError, UnicodeEncodeError):
        return None

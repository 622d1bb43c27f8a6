"""The settings file (``--settings FILE``): TOML, read at start and on SIGHUP.

Only the ``[access]`` table is read here (see :mod:`.access`); a bad file is
one line of :class:`SettingsError`, and on SIGHUP the old settings stay.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

from .access import AccessError, AccessRules

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(ValueError):
    """The settings file cannot be used; the message is one line."""


@dataclass(frozen=True)
class Settings:
    access: AccessRules = field(default_factory=AccessRules)


def load_settings(path: str) -> Settings:
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read settings file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path}: {error}") from None
    try:
        return Settings(access=AccessRules.from_toml(table.get("access")))
    except AccessError as error:
        raise SettingsError(f"settings file {path}: {error}") from None

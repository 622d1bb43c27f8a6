"""Real faults of the machine for tests and the fault suite (root only, as CI runs):
a small filesystem that fills, an unprivileged user, and a Python that user can
run with this checkout's geartrain."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import geartrain


def mount_small_disk(size: str) -> Path:
    """A tmpfs of ``size`` (``"24m"``) on a new directory: a filesystem that really
    fills (ENOSPC, SQLite's "database or disk is full")."""
    where = Path(tempfile.mkdtemp(prefix="gt-disk-"))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
        check=True,
        capture_output=True,
    )
    return where


def unmount_small_disk(where: Path) -> None:
    subprocess.run(["umount", "--lazy", str(where)], check=True)
    where.rmdir()


def add_system_user() -> pwd.struct_passwd:
    """A real unprivileged user (a system user whose home is in a new temporary
    directory); :func:`remove_system_user` when done."""
    name = f"gt-test-{secrets.token_hex(4)}"
    base = Path(tempfile.mkdtemp(prefix="gt-user-"))
    base.chmod(0o755)
    subprocess.run(
        ["useradd", "--system", "--create-home", "--home-dir", str(base / "home")]
        + ["--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(name)


def remove_system_user(user: pwd.struct_passwd) -> None:
    subprocess.run(["userdel", user.pw_name], check=True, capture_output=True)
    shutil.rmtree(Path(user.pw_dir).parent, ignore_errors=True)


def python_for(user: pwd.struct_passwd) -> list[str]:
    """``env`` settings and a Python that ``user`` may run with this checkout's
    geartrain: this one, or, where it lives in a directory closed to others (a
    pyenv under /root), the system's Python of the same version with this one's
    packages."""
    probe = ["setpriv", *as_user(user), "env", sys.executable, "-c", "import geartrain"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return [sys.executable]
    paths = [str(Path(geartrain.__file__).parents[1]), sysconfig.get_paths()["purelib"]]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return [f"PYTHONPATH={os.pathsep.join(paths)}", f"/usr/bin/python{version}"]


def as_user(user: pwd.struct_passwd) -> list[str]:
    """setpriv's flags for running as ``user`` (as systemd's ``User=`` does)."""
    return [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]

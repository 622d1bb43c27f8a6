"""failing_worker.php as a test peer, and the failed set as `show failed jobs` lists it."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from wire import HOST, admin_command

PHP_WORKER = Path(__file__).parent / "php_peers" / "failing_worker.php"

Start = tuple[str, str, str, float]
"""function, handle, unique, epoch seconds"""


class PhpWorker:
    """failing_worker.php on one server, and the job starts it printed."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["php", str(PHP_WORKER), HOST, str(port)], stdout=subprocess.PIPE, text=True
        )
        self.starts: list[Start] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            function, handle, *unique, at = line.split()
            self.starts.append((function, handle, unique[0] if unique else "", float(at)))

    def wait_for_starts(self, count: int, timeout: float = 30.0) -> list[Start]:
        deadline = time.monotonic() + timeout
        while len(self.starts) < count:
            assert self.proc.poll() is None, "the PHP worker exited"
            assert time.monotonic() < deadline, f"only {self.starts}"
            time.sleep(0.02)
        return self.starts

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def failed_lines(port: int) -> list[list[bytes]]:
    """`show failed jobs`: one list of fields per failed job."""
    reply = admin_command(port, "show failed jobs")
    assert reply.endswith(b".\n")
    return [line.split(b"\t") for line in reply[:-2].splitlines()]

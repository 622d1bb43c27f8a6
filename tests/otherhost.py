"""Another host on this machine: a network namespace joined to this one by a veth pair.

A server here sees a client in the namespace at a non-loopback address, as it would
see a remote one, while the traffic never leaves the machine.  The pair gets a /30 of
TEST-NET-2 (198.51.100.0/24, never routed) that no interface here holds yet.  Needs
root, as CI has.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

NETWORK = ipaddress.ip_network("198.51.100.0/24")
_SERIAL = itertools.count()


@dataclass
class OtherHost:
    namespace: str
    here: str
    """This machine's address, as the other host reaches it."""
    address: str
    """The other host's own address, as a server here sees it."""

    def run(self, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """Run a command on the other host."""
        return subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv], capture_output=True, timeout=timeout
        )

    def http(
        self, port: int, path: str, *curl_args: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        """GET http://here:port/path with curl there: status, headers and body (so far,
        for a stream that outlives ``--max-time``), or None if the connection was refused."""
        done = self.run(["curl", "-si", "--max-time", "20", *curl_args, self.url(port, path)])
        if done.returncode == 7:  # curl: failed to connect
            return None
        assert done.returncode in (0, 28) and done.stdout, done.stderr  # 28: timed out
        head, _, body = done.stdout.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = dict(line.split(": ", 1) for line in lines)
        return int(status.split()[1]), fields, body

    def url(self, port: int, path: str) -> str:
        return f"http://{self.here}:{port}{path}"


@contextlib.contextmanager
def other_host() -> Iterator[OtherHost]:
    # The kernel may remove a deleted namespace's links a moment later: new names each time.
    tag = f"{os.getpid()}-{next(_SERIAL)}"
    name, outside, inside = f"gt-other-{tag}", f"gto{tag}", f"gti{tag}"
    here, there = _free_pair()
    ip = ["ip", "-n", name]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", inside, "netns", name],
            ["ip", "addr", "add", f"{here}/30", "dev", outside],
            ["ip", "link", "set", outside, "up"],
            [*ip, "addr", "add", f"{there}/30", "dev", inside],
            [*ip, "link", "set", inside, "up"],
            [*ip, "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True)
        yield OtherHost(name, str(here), str(there))
    finally:
        # Deleting the namespace deletes its end of the pair, and with it ours.
        subprocess.run(["ip", "netns", "del", name], check=False)


def _free_pair() -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    taken = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for subnet in NETWORK.subnets(new_prefix=30):
        here, there = list(subnet.hosts())
        if f" {here}/" not in taken and f" {there}/" not in taken:
            return here, there
    raise RuntimeError(f"every /30 of {NETWORK} is in use")

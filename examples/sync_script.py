"""The blocking API, for scripts, threads and web apps: same names, no asyncio.

python examples/sync_script.py [host:port ...]
"""

import sys

from geartrain import JobTimeout, sync

servers = sys.argv[1:] or ["localhost:4730"]

with sync.Worker(servers) as worker:  # works in the background until the block ends
    worker.register("upper", lambda job: job.data.upper())

    with sync.Client(servers) as client:
        print(client.submit("upper", "hello").decode())  # HELLO
        try:
            client.submit("no-such-function", "x", timeout=0.5)
        except JobTimeout:
            print("no worker for no-such-function")

    with sync.Admin(servers[0]) as admin:
        for status in admin.status():
            print(status.function, status.total, status.running, status.workers)

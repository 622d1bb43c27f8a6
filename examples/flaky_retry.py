"""A task that fails twice, retried until it succeeds: the caller gets "ok after 3".

python examples/flaky_retry.py [host:port ...]

The worker declares the function's retry policy; the server runs a failed job
again after the backoff and the waiting client sees only the attempt that
succeeded.  gearmand has no retries: there the client gets the first failure.
"""

import asyncio
import sys

from geartrain import Client, JobException, Retry, Worker, WorkerJob

servers = sys.argv[1:] or ["localhost:4730"]


async def main() -> None:
    worker = Worker(servers)
    calls = 0

    @worker.register("flaky", retry=Retry(attempts=3, backoff=0.1))
    async def flaky(job: WorkerJob) -> str:
        nonlocal calls
        calls += 1
        print(f"attempt {job.attempt} of {job.attempts}")
        if calls < 3:
            raise ConnectionError("the service is down")
        return f"ok after {calls}"

    async with worker, Client(servers) as client:
        try:
            print((await client.submit("flaky", b"x")).decode())
        except JobException as failure:  # the worker's exception, as text
            print(f"failed: {failure.data.decode()}")


asyncio.run(main())

"""A worker for "strlen": answers the length of the workload.

    python examples/strlen_worker.py [host:port ...]

Stop it with Ctrl-C or SIGTERM: it finishes the job in hand first.
"""

import asyncio
import sys

from geartrain import Worker, WorkerJob

worker = Worker(sys.argv[1:] or ["localhost:4730"])


@worker.register("strlen")
async def strlen(job: WorkerJob) -> str:
    return str(len(job.data))


if __name__ == "__main__":
    asyncio.run(worker.run())

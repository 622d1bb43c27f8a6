"""Queue a background job, then poll its status until it is done.

    python examples/background_status.py [host:port ...]

Runs its own worker for "report" (a slow job that reports progress), queues a
job, and polls GET_STATUS every 0.2 s, printing the progress.  Background
jobs report to nobody; status polling is how a web app shows a progress bar.
"""

import asyncio
import sys

from geartrain import Client, Worker, WorkerJob


async def report(job: WorkerJob) -> bytes:
    for step in range(1, 6):
        await asyncio.sleep(0.2)
        job.send_status(step, 5)
    return b"report.pdf"


async def main(servers: list[str]) -> None:
    worker = Worker(servers)
    worker.register("report", report)
    async with worker, Client(servers) as client:
        handle = await client.submit_background("report", b"monthly")
        print("queued", handle.decode())
        while True:
            status = await client.get_status(handle)
            if not status.known:
                print("finished")
                break
            state = "running" if status.running else "queued"
            percent = f"{status.progress:.0%}" if status.progress is not None else "-"
            print(f"{state} {percent}")
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["localhost:4730"]))

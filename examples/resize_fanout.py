"""Fan out "image resizes" to workers, following their progress as it happens.

    python examples/resize_fanout.py worker [host:port ...]   # start one or more
    python examples/resize_fanout.py client [--timeout SECONDS] [host:port ...]

The worker pretends to resize: it reports WORK_STATUS after each of a few
steps and returns a small JSON description of the result.  The client submits
one job per image at once, prints progress updates from every job, and each
result as soon as its job finishes; with no worker running it gives up after
``--timeout`` seconds (10 by default) and says so.
"""

import argparse
import asyncio
import sys
from typing import Any

import geartrain
from geartrain import Client, JobRequest, JobTimeout, StatusUpdate, Worker, WorkerJob

IMAGES = [f"photo-{n:02d}.jpg" for n in range(1, 9)]
SIZES = [(1024, 768), (640, 480), (160, 120)]


def make_worker(servers: list[str]) -> Worker:
    worker = Worker(servers, concurrency=4)

    @worker.register(timeout=30)
    async def resize(job: WorkerJob) -> dict[str, Any]:
        request = job.value  # the client's dict, decoded from JSON
        done = []
        for step, (width, height) in enumerate(request["sizes"], start=1):
            await asyncio.sleep(0.05)  # the real work would go here
            done.append(f"{request['image']}@{width}x{height}")
            job.send_status(step, len(request["sizes"]))
        return {"image": request["image"], "files": done}  # goes back as JSON

    return worker


async def follow(job: geartrain.Job, name: str) -> None:
    async for update in job:
        if isinstance(update, StatusUpdate):
            print(f"{name}: {update.numerator}/{update.denominator}")


async def fan_out(servers: list[str], timeout: float) -> list[Any]:
    async with Client(servers) as client:
        requests = [
            JobRequest("resize", {"image": image, "sizes": SIZES}, timeout=timeout)
            for image in IMAGES
        ]
        jobs = await client.submit_batch(requests)
        watchers = [
            asyncio.create_task(follow(job, image)) for job, image in zip(jobs, IMAGES, strict=True)
        ]
        results = []
        async for job in geartrain.as_completed(jobs):
            result = await job  # a dict: the data went as JSON, the result comes back from it
            print("done:", result["image"], "->", len(result["files"]), "files")
            results.append(result)
        await asyncio.gather(*watchers)
        return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description="Fan out image resizes to workers and follow their progress."
    )
    parser.add_argument("role", choices=["worker", "client"])
    parser.add_argument("servers", nargs="*", default=["localhost:4730"], metavar="host:port")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="client: how long to wait for each result (default 10)",
    )
    args = parser.parse_intermixed_args(argv)
    if args.role == "worker":
        asyncio.run(make_worker(args.servers).run())
        return 0
    try:
        asyncio.run(fan_out(args.servers, args.timeout))
    except JobTimeout:
        print(
            f"no result within {args.timeout:g}s: is a resize worker running? "
            f"Start one with: python {sys.argv[0]} worker",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

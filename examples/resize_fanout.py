"""Fan out "image resizes" to workers, following their progress as it happens.

    python examples/resize_fanout.py worker [host:port ...]   # start one or more
    python examples/resize_fanout.py client [host:port ...]

The worker pretends to resize: it reports WORK_STATUS after each of a few
steps and returns a small JSON description of the result.  The client submits
one job per image at once, prints progress updates from every job, and each
result as soon as its job finishes.
"""

import asyncio
import sys
from typing import Any

import geartrain
from geartrain import Client, StatusUpdate, Worker, WorkerJob

IMAGES = [f"photo-{n:02d}.jpg" for n in range(1, 9)]
SIZES = [(1024, 768), (640, 480), (160, 120)]


def make_worker(servers: list[str]) -> Worker:
    worker = Worker(servers, concurrency=4)

    @worker.register("resize", timeout=30)
    async def resize(job: WorkerJob) -> bytes:
        request = job.json()
        done = []
        for step, (width, height) in enumerate(request["sizes"], start=1):
            await asyncio.sleep(0.05)  # the real work would go here
            done.append(f"{request['image']}@{width}x{height}")
            job.send_status(step, len(request["sizes"]))
        return geartrain.dumps({"image": request["image"], "files": done})

    return worker


async def follow(job: geartrain.Job, name: str) -> None:
    async for update in job:
        if isinstance(update, StatusUpdate):
            print(f"{name}: {update.numerator}/{update.denominator}")


async def fan_out(servers: list[str]) -> list[Any]:
    async with Client(servers) as client:
        requests = [
            ("resize", geartrain.dumps({"image": image, "sizes": SIZES})) for image in IMAGES
        ]
        jobs = await client.submit_batch(requests)
        watchers = [
            asyncio.create_task(follow(job, image)) for job, image in zip(jobs, IMAGES, strict=True)
        ]
        results = []
        async for job in geartrain.as_completed(jobs):
            result = geartrain.loads(await job)
            print("done:", result["image"], "->", len(result["files"]), "files")
            results.append(result)
        await asyncio.gather(*watchers)
        return results


if __name__ == "__main__":
    role, servers = sys.argv[1], sys.argv[2:] or ["localhost:4730"]
    if role == "worker":
        asyncio.run(make_worker(servers).run())
    else:
        asyncio.run(fan_out(servers))

"""Typed payloads (a codec per function) and OpenTelemetry spans, against both servers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from geartrain import Client, JobException, Worker, WorkerJob, sync
from geartrain.codecs import JSON, RAW, Codec
from gt_helpers import working
from serverproc import ServerProc

pytestmark = [pytest.mark.timeout(30), pytest.mark.in_process]

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


class Upper:
    """A codec of its own: text, upper-cased on the way out."""

    def encode(self, obj: Any) -> bytes:
        return str(obj).upper().encode()

    def decode(self, data: bytes) -> Any:
        return data.decode().lower()


async def test_objects_go_as_json_and_come_back_typed(server: ServerProc) -> None:
    worker = Worker(server.address)

    @worker.register("add")
    async def add(job: WorkerJob) -> dict[str, float]:
        return {"sum": sum(job.value["numbers"])}  # a dict result goes as JSON

    @worker.register
    async def nothing(job: WorkerJob) -> None:
        return None  # an empty result: JSON's None

    codecs: dict[str, Codec] = {"add": JSON}
    async with working(worker), Client(server.address, codecs=codecs) as client:
        assert await client.submit("add", {"numbers": [1, 2, 3.5]}) == {"sum": 6.5}
        assert await client.submit("add", b'{"numbers":[1]}') == {"sum": 1}
    async with Client(server.address) as plain, working(worker):
        # Without a codec for the function, the codec that sent the data reads the result
        # (JSON for objects); data sent as bytes or str gets the result's bytes.
        assert await plain.submit("add", {"numbers": [1]}) == {"sum": 1}
        assert await plain.submit("add", b'{"numbers":[1]}') == b'{"sum":1}'
        assert await plain.submit("nothing", {"x": 1}) is None
        jobs = await plain.submit_batch([("add", {"numbers": [2]}), ("add", '{"numbers":[2]}')])
        assert [await job for job in jobs] == [{"sum": 2}, b'{"sum":2}']
    with sync.Client(server.address) as blocking:
        async with working(worker):
            result = await asyncio.to_thread(blocking.submit, "add", {"numbers": [3]})
    assert result == {"sum": 3}


async def test_a_codec_per_function(server: ServerProc) -> None:
    worker = Worker(server.address)
    worker.register("shout", lambda job: job.value + "!", codec=Upper())
    worker.register("raw", lambda job: {"not": "bytes"}, codec=RAW)
    codecs: dict[str, Codec] = {"shout": Upper()}
    async with working(worker), Client(server.address, codecs=codecs) as client:
        # The client sends HI, the worker reads "hi" and answers "hi!" as HI!.
        assert await client.submit("shout", {"x"}) == "{'x'}!"
        assert await client.submit("shout", "Hi") == "hi!"  # str is UTF-8 as it is
        with pytest.raises(JobException, match="TypeError"):
            await client.submit("raw", b"")


async def test_spans_around_submit_and_run(server: ServerProc) -> None:
    EXPORTER.clear()
    worker = Worker(server.address)
    worker.register("traced", lambda job: b"ok")
    worker.register("boom", lambda job: 1 / 0)
    async with working(worker), Client(server.address) as client:
        assert await client.submit("traced", b"x") == b"ok"
        with pytest.raises(JobException):
            await client.submit("boom", b"x")
        handle = await client.submit_background("traced", b"y")
    finished = EXPORTER.get_finished_spans()
    spans = {(s.name, s.kind.name): s for s in finished}
    submit = spans[("gearman.submit traced", "PRODUCER")]
    # The background job may have run too before the worker stopped: find the
    # run of the foreground job by its handle.
    runs = [s for s in finished if (s.name, s.kind.name) == ("gearman.run traced", "CONSUMER")]
    assert submit.attributes is not None and all(r.attributes is not None for r in runs)
    assert submit.attributes["gearman.job.handle"] in [
        r.attributes["gearman.job.handle"]  # type: ignore[index]
        for r in runs
    ]
    assert submit.attributes["messaging.destination.name"] == "traced"
    failed = spans[("gearman.submit boom", "PRODUCER")]
    assert not failed.status.is_ok and failed.events[0].name == "exception"
    background = spans[("gearman.submit_background traced", "PRODUCER")]
    assert background.attributes is not None
    assert background.attributes["gearman.job.handle"] == handle.decode()


def test_no_opentelemetry_no_spans() -> None:
    # Without the package installed the libraries work the same.
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from geartrain import tracing\n"
        "with tracing.span('gearman.submit', 'PRODUCER', 'f') as s: assert s is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

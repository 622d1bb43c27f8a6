"""Code written for python-gearman 2.0.2; the only change is the import line.

python examples/python_gearman_port.py [host:port]

The worker leaves ``work()`` once the client has its answer, whichever worker
on the server did the job.
"""

import sys
import threading

from geartrain.compat import gearman  # was: import gearman

SERVER = sys.argv[1] if len(sys.argv) > 1 else "localhost:4730"


class Worker(gearman.GearmanWorker):
    def __init__(self, hosts: list[str]) -> None:
        super().__init__(hosts)
        self.done = threading.Event()

    def after_poll(self, any_activity: bool) -> bool:
        return not self.done.is_set()  # False leaves work()


def reverse(worker: gearman.GearmanWorker, job: gearman.GearmanJob) -> bytes:
    data: bytes = job.data
    return data[::-1]


worker = Worker([SERVER])
worker.register_task("reverse", reverse)
thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.1})
thread.start()

client = gearman.GearmanClient([SERVER])
request = client.submit_job("reverse", "hello")
worker.done.set()
print(request.state, request.result)  # COMPLETE b'olleh'
thread.join()

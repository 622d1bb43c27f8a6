"""Code written for python-gearman 2.0.2; the only change is the import line.

python examples/python_gearman_port.py [host:port]
"""

import sys
import threading

from geartrain.compat import gearman  # was: import gearman

SERVER = sys.argv[1] if len(sys.argv) > 1 else "localhost:4730"


class Worker(gearman.GearmanWorker):
    def __init__(self, hosts, jobs):
        super().__init__(hosts)
        self.jobs_left = jobs

    def after_poll(self, any_activity):
        return self.jobs_left > 0


def reverse(worker, job):
    worker.jobs_left -= 1
    return job.data[::-1]


worker = Worker([SERVER], jobs=1)
worker.register_task("reverse", reverse)
thread = threading.Thread(target=worker.work, kwargs={"poll_timeout": 0.1})
thread.start()

client = gearman.GearmanClient([SERVER])
request = client.submit_job("reverse", "hello")
print(request.state, request.result)  # COMPLETE b'olleh'
thread.join()

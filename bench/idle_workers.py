"""Idle workers for the bench's `idle` phase: the real worker daemon
(jobrunner.worker.daemon.WorkerDaemon, its own client, config loader and
protocol), many of them as threads of this one process.

    python bench/idle_workers.py SPEC_JSON

SPEC_JSON holds {"base_url", "workdir", "workers": [[api_key, secret], ...]}.
Each worker gets an ini file with its key, secret and a script folder, and
nothing else: every other setting is the worker's default. The process
prints "ready" once every daemon runs; "mark" on stdin starts the count of
requests, "stop" prints the requests counted since (by status; "transient"
for a refused connection, a time-out or a 5xx) and ends the process.
"""
import json
import logging
import os
import sys
import threading
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jobrunner.worker.client import ApiClient, TransientError  # noqa: E402
from jobrunner.worker.config import load_config  # noqa: E402
from jobrunner.worker.daemon import WorkerDaemon  # noqa: E402


class CountingClient(ApiClient):
    """The worker's own client; it counts the answers it gets."""

    counts = Counter()
    lock = threading.Lock()

    def send_once(self, method, path, params=None, data=None, timeout=None):
        try:
            response = super().send_once(method, path, params, data, timeout)
        except TransientError:
            with self.lock:
                self.counts["transient"] += 1
            raise
        with self.lock:
            self.counts[str(response.status_code)] += 1
        return response


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
    scripts = os.path.join(spec["workdir"], "scripts")
    os.makedirs(scripts, exist_ok=True)
    daemons = []
    for api_key, secret in spec["workers"]:
        ini = os.path.join(spec["workdir"], f"idle-{api_key}.ini")
        with open(ini, "w") as f:
            f.write(f"[jobrunner_worker]\napi_base_url = {spec['base_url']}/\napi_key = {api_key}\n"
                    f"secret = {secret}\nscript_temp_path = {scripts}\n")
        config = load_config(ini)
        client = CountingClient(config.api_base_url, config.api_key, config.secret,
                                ca_bundle=config.ca_bundle)
        daemons.append(WorkerDaemon(config, client=client))
    for daemon in daemons:
        threading.Thread(target=daemon.run, name=daemon.config.api_key, daemon=True).start()
    print("ready", flush=True)
    marked = Counter()
    for line in sys.stdin:
        command = line.strip()
        with CountingClient.lock:
            current = Counter(CountingClient.counts)
        if command == "mark":
            marked = current
        elif command == "stop":
            print(json.dumps(dict(current - marked)), flush=True)
            break
    for daemon in daemons:
        daemon.request_stop()
    # A daemon in the middle of a request ends with the process.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

"""A load client: sends prepared requests over keep-alive connections.

    python bench/loadgen.py REQUESTS_JSON THREADS

REQUESTS_JSON holds {"port": ..., "requests": [[method, path, body, headers], ...]}.
The client connects, prints "ready", waits for a line on stdin ("go"), sends
every request once (split over THREADS threads, each on its own connection)
and prints a JSON line {"count", "seconds", "statuses"}.
"""
import http.client
import json
import sys
import threading
import time
from collections import Counter


def send_all(port, requests, statuses, lock):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    counts = Counter()
    for method, path, body, headers in requests:
        connection.request(method, path, body=body.encode() if body else None, headers=headers)
        response = connection.getresponse()
        response.read()
        counts[response.status] += 1
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.close()
    with lock:
        statuses.update(counts)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    threads_count = int(sys.argv[2])
    requests = spec["requests"]
    shares = [requests[i::threads_count] for i in range(threads_count)]
    statuses = Counter()
    lock = threading.Lock()
    threads = [
        threading.Thread(target=send_all, args=(spec["port"], share, statuses, lock))
        for share in shares
    ]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    print(json.dumps({"count": len(requests), "seconds": seconds,
                      "statuses": {str(k): v for k, v in statuses.items()}}), flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""A flood of wrong logins against the worker API's latency.

    python bench/login_flood.py [--seconds 15] [--flooders 16]

Starts the app under waitress (8 threads, as production.ini) on a fresh
SQLite file, twice: with the argon2 hashes unbounded (as before the bound,
`jobrunner.login.max_concurrent_hashes = 0`) and bounded (the default, 2).
Each time it measures the latency of a worker's signed `GET /api/v1/worker/`
alone, then while `--flooders` threads post wrong logins as fast as they can.
Every flood request names another user and comes from another address
(X-Forwarded-For through a trusted proxy), as a distributed flood would, so
the per-username and per-address limits never stop it and every login costs
a hash: what remains is the bound's own effect.
"""
import argparse
import http.client
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import waitress  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from jobrunner import main  # noqa: E402
from jobrunner.migrations import upgrade  # noqa: E402
from jobrunner.models import Worker, get_engine  # noqa: E402
from jobrunner.signing import v2_header  # noqa: E402
from tests.stack import free_port  # noqa: E402

THREADS = 8


def serve(url, port, max_hashes):
    app = main({}, **{
        "sqlalchemy.url": url, "jobrunner.session_secret": "bench-secret",
        "jobrunner.login.max_concurrent_hashes": str(max_hashes), "mail.host": "127.0.0.1",
        "mail.port": "1",
    })
    server = waitress.create_server(app, listen=f"127.0.0.1:{port}", threads=THREADS,
                                    trusted_proxy="127.0.0.1", trusted_proxy_headers={"x-forwarded-for"},
                                    clear_untrusted_proxy_headers=True)
    threading.Thread(target=server.run, daemon=True).start()
    return server


def api_latencies(port, api_key, secret, seconds):
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        path = "/api/v1/worker/"
        started = time.monotonic()
        conn.request("GET", path, headers={"Authorization": v2_header(api_key, secret, "GET", path)})
        response = conn.getresponse()
        response.read()
        latencies.append(time.monotonic() - started)
        assert response.status == 200, response.status
        conn.close()
        time.sleep(0.05)
    return latencies


def flood(port, stop, statuses):
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        body = urllib.parse.urlencode({"username": f"guess{random.random()}", "password": "wrong",
                                       "csrf_token": "x"})
        address = "10.%d.%d.%d" % (random.randrange(256), random.randrange(256), random.randrange(256))
        try:
            # No CSRF token of a session: the app answers 403 before any
            # hash... so the flood takes one first, as a browser would.
            conn.request("GET", "/login", headers={"X-Forwarded-For": address})
            response = conn.getresponse()
            page = response.read().decode()
            cookie = response.getheader("Set-Cookie", "").split(";")[0]
            token = page.split('name="csrf-token" content="')[1].split('"')[0]
            body = body.replace("csrf_token=x", "csrf_token=" + token)
            conn.request("POST", "/login", body=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                "X-Forwarded-For": address})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        except (OSError, IndexError, http.client.HTTPException):
            statuses.append(0)
        finally:
            conn.close()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(max_hashes, seconds, flooders):
    folder = tempfile.mkdtemp(prefix="jobrunner-flood-")
    url = f"sqlite:///{folder}/flood.sqlite"
    upgrade(url)
    engine = get_engine({"sqlalchemy.url": url})
    with sessionmaker(bind=engine)() as session:
        session.add(Worker(title="bench", api_key="bench-key", secret="bench-secret"))
        session.commit()
    port = free_port()
    server = serve(url, port, max_hashes)
    quiet = api_latencies(port, "bench-key", "bench-secret", seconds)
    stop, statuses = threading.Event(), []
    threads = [threading.Thread(target=flood, args=(port, stop, statuses), daemon=True)
               for _ in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    loaded = api_latencies(port, "bench-key", "bench-secret", seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    server.close()
    engine.dispose()
    return quiet, loaded, statuses


def main_cli():
    # The flood's own log lines (failed logins, waitress' queue) drown the table.
    logging.getLogger("jobrunner").setLevel(logging.CRITICAL)
    logging.getLogger("waitress").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--flooders", type=int, default=16)
    args = parser.parse_args()
    print("| hashes at once | API p50 quiet | API p50 flood | API p95 flood | API max flood "
          "| logins answered/s | of them 503 |")
    print("|---|---|---|---|---|---|---|")
    for max_hashes, label in ((0, "unbounded (before)"), (2, "2 (after)")):
        quiet, loaded, statuses = measure(max_hashes, args.seconds, args.flooders)
        busy = sum(1 for s in statuses if s == 503)
        ms = lambda v: f"{v * 1000:.0f} ms"  # noqa: E731
        print(f"| {label} | {ms(statistics.median(quiet))} | {ms(statistics.median(loaded))} "
              f"| {ms(percentile(loaded, 0.95))} | {ms(max(loaded))} "
              f"| {len(statuses) / (args.seconds + 1):.1f} | {busy / max(1, len(statuses)):.0%} |")


if __name__ == "__main__":
    main_cli()

"""Server CPU per request of each hot worker call, and per completed run.

    python bench/request_cost.py [--backends postgresql,sqlite] [--runs 200]

Starts the server as bench/run.py does (pserve, 8 threads) and sends each
call once per run, one request at a time on one keep-alive connection,
reading the server process's CPU time (user + system, /proc) before and
after each call. CPU time depends less than requests per second on what
else the machine does, but not little: on a machine loaded far beyond its
cores it grew 2 to 3 times for unchanged calls. Compare runs made on a
quiet machine. PostgreSQL's own CPU is not counted (other databases of the
machine would be counted with it).

Calls: the enqueueable list (8 runs due), the claim, GET of the job (the
original worker's script), the start, POST and PATCH of the log, the return;
v2 variants of the list; and, where the server has them, the return with
`log_content`. Per run: a list for 8 runs, then the original steps (claim,
job, start, log POST, return) or the fast path (claim with the script,
start, return with the log).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))

from sqlalchemy import select  # noqa: E402

from bench.common import cpu_seconds, iso, load_average, utcnow  # noqa: E402
from bench.run import DEFAULT_POSTGRES_URL, SERVER_SETTINGS, Client, Scene, Sizes, signed  # noqa: E402
from bench.stack import Stack  # noqa: E402
from jobrunner.models import RunLog  # noqa: E402
from jobrunner.signing import v2_header  # noqa: E402


def signed_v2(worker, method, path, data=None):
    _id, api_key, secret = worker
    body = json.dumps(data, separators=(",", ":")) if data is not None else ""
    headers = {"Authorization": v2_header(api_key, secret, method, path, body.encode()),
               "Accept": "application/json"}
    if body:
        headers["Content-Type"] = "application/json"
    return [method, path, body, headers]


def measure(stack, name, requests, expect, result):
    client = Client(stack.port)
    before = cpu_seconds(stack.server.pid)
    started = time.perf_counter()
    answers = []
    for request in requests:
        status, payload = client.send(*request)
        if status != expect:
            raise RuntimeError(f"{name}: {request[0]} {request[1]} -> {status}: {payload[:300]!r}")
        answers.append(payload)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(stack.server.pid) - before
    client.close()
    result[name] = {"cpu_ms": 1000 * cpu / len(requests), "wall_ms": 1000 * seconds / len(requests)}
    print(f"  {name:<16} {result[name]['cpu_ms']:6.2f} ms CPU   {result[name]['wall_ms']:7.2f} ms wall",
          flush=True)
    return answers


def bench_backend(backend, runs, postgres_url):
    workdir = tempfile.mkdtemp(prefix=f"jobrunner-cost-{backend}-")
    stack = Stack(workdir, database_url=postgres_url if backend == "postgresql" else None,
                  settings=SERVER_SETTINGS)
    result = {}
    try:
        stack.start_server()
        scene = Scene(stack, Sizes(e2e_jobs=8, history_jobs=1))
        worker = scene.workers[2]
        worker_uri = f"/api/v1/worker/{worker[0]}/"
        print(f"{backend}:", flush=True)
        scene.add_runs(scene.e2e_jobs[:8], utcnow())
        listing = "/api/v1/run/?state=enqueueable&limit=8"
        warm = Client(stack.port)
        for _ in range(20):
            warm.send(*signed(worker, "GET", listing))
        warm.close()
        measure(stack, "list v1", [signed(worker, "GET", listing)] * runs, 200, result)
        measure(stack, "list v2", [signed_v2(worker, "GET", listing) for _ in range(runs)], 200, result)

        for path_name in ("original", "fast"):
            jobs = scene.add_jobs(f"cost {path_name}", runs)
            run_ids = scene.add_runs(jobs, utcnow())
            claims = measure(stack, f"claim ({path_name})", [
                signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                       {"enqueue_dts": iso(utcnow()), "worker": worker_uri}) for run_id in run_ids], 202, result)
            has_script = "script_content" in json.loads(claims[0])
            if path_name == "original":
                measure(stack, "GET job", [signed(worker, "GET", f"/api/v1/job/{job_id}/") for job_id in jobs],
                        200, result)
            measure(stack, f"start ({path_name})", [
                signed(worker, "PATCH", f"/api/v1/run/{run_id}/", {"start_dts": iso(utcnow()), "pid": 4242})
                for run_id in run_ids], 202, result)
            content = "".join(f"line {i} of the script's output\n" for i in range(10))
            if path_name == "original":
                measure(stack, "run_log POST", [
                    signed(worker, "POST", "/api/v1/run_log/", {"run": f"/api/v1/run/{r}/", "content": ""})
                    for r in run_ids], 201, result)
                with stack.engine.connect() as conn:
                    log_ids = conn.scalars(select(RunLog.id).where(RunLog.run_id.in_(run_ids))).all()
                measure(stack, "run_log PATCH", [
                    signed(worker, "PATCH", f"/api/v1/run_log/{log_id}/", {"content": content})
                    for log_id in log_ids], 202, result)
                measure(stack, "return", [
                    signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                           {"return_dts": iso(utcnow()), "return_success": True}) for run_id in run_ids],
                        202, result)
            elif has_script:
                measure(stack, "return with log", [
                    signed(worker, "PATCH", f"/api/v1/run/{run_id}/",
                           {"return_dts": iso(utcnow()), "return_success": True, "log_content": content})
                    for run_id in run_ids], 202, result)
            else:
                result.pop("claim (fast)", None)
                result.pop("start (fast)", None)
        per_list = result["list v1"]["cpu_ms"] / 8
        original = per_list + sum(result[name]["cpu_ms"] for name in (
            "claim (original)", "GET job", "start (original)", "run_log POST", "return"))
        result["per run, original steps"] = original
        print(f"  per run, original steps (list/8, claim, job, start, log POST, return): {original:.1f} ms")
        if "return with log" in result:
            fast = per_list + sum(result[name]["cpu_ms"] for name in (
                "claim (fast)", "start (fast)", "return with log"))
            result["per run, fast path"] = fast
            print(f"  per run, fast path (list/8, claim with script, start, return with log): {fast:.1f} ms")
    except BaseException:
        print(stack.logs(tail=3000), file=sys.stderr)
        raise
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--postgres-url", default=os.environ.get("JOBRUNNER_BENCH_DATABASE_URL",
                                                                 DEFAULT_POSTGRES_URL))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    loads = [load_average()]
    print(f"load average before: {loads[0]}", flush=True)
    results = {backend: bench_backend(backend, args.runs, args.postgres_url)
               for backend in args.backends.split(",")}
    loads.append(load_average())
    print(f"load average after: {loads[1]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"loads": loads, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

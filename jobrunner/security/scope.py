"""What a worker may write, by `jobrunner.worker_write_scope`.

A job script runs with its worker's identity (it can read what the worker
can). With `all` a worker may use every verb a resource allows on what
reaches it, as the original protocol had it: a hostile script could then
rewrite every job of the projects its worker serves, and so run code on
every machine of their pools. With `protocol` a worker writes only what
the worker protocol needs: its runs, their logs, kill requests and its
own ping.
"""
# (resource, write) pairs the worker protocol needs.
PROTOCOL_WRITES = {
    ("run", "update"),
    ("run_log", "create"),
    ("run_log", "update"),
    ("kill_request", "update"),
    ("worker", "update"),
}
# What a worker sets on itself, whatever the scope.
WORKER_SELF_FIELDS = {"ping_response_dts", "worker_version", "concurrent_jobs"}


def worker_may_write(scope, resource_name, write):
    """Whether a worker may make this write (`create` or `update`) at all."""
    return scope == "all" or (resource_name, write) in PROTOCOL_WRITES

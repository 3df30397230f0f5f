"""GET /api/v1/ and every resource's schema/."""
import pytest

from tests.api.conftest import assert_error

# resource -> (list methods, detail methods, fields of the contract, read-only fields)
RESOURCES = {
    "group": (["get"], ["get"], {"name"}, set()),
    "project": (
        ["get"], ["get"],
        {"title", "description", "enqueue_is_enabled", "worker_pools", "auth_groups", "webhook_urls"},
        set(),
    ),
    "worker_pool": (
        ["get"], ["get"], {"title", "description", "enqueue_is_enabled", "workers", "webhook_urls"}, set()
    ),
    "worker": (
        ["get"], ["get", "patch"],
        {"title", "description", "api_key", "enqueue_is_enabled", "ping_response_dts",
         "worker_version", "concurrent_jobs", "ping_interval", "unresponsive_limit"},
        {"api_key", "ping_interval", "unresponsive_limit"},
    ),
    "job_template": (
        ["get"], ["get"], {"title", "description", "body", "enqueue_is_enabled", "project", "webhook_urls"},
        set(),
    ),
    "job": (
        ["get", "post"], ["get", "put", "patch"],
        {"title", "description", "job_template", "worker_pool", "parent", "children",
         "script_content", "script_content_partial", "enqueue_is_enabled", "reschedule_interval",
         "reschedule_interval_type", "reschedule_excludes", "run_on_all_workers",
         "schedule_children_on_error", "notification_addresses", "disable_enqueue_after_fails",
         "fail_times", "last_completed_schedule_id", "webhook_urls", "webhook_on_success",
         # schedules: cron, time zones, overlap, timeouts, retries, misfires
         "cron_expression", "timezone", "concurrency_policy", "timeout", "retries", "retry_delay",
         "misfire_policy", "first_run_at"},
        {"children", "script_content", "fail_times", "last_completed_schedule_id"},
    ),
    "run": (
        ["get", "post"], ["get", "patch"],
        {"job", "worker", "run_log", "schedule_id", "schedule_dts", "enqueue_dts", "start_dts",
         "return_dts", "return_success", "pid", "is_manual", "schedule_children", "attempt",
         "timed_out", "log_content"},
        {"run_log", "schedule_id", "is_manual", "attempt"},
    ),
    "kill_request": (
        ["get", "post"], ["get", "patch"], {"run", "schedule_dts", "enqueue_dts", "execute_dts"},
        {"schedule_dts"},
    ),
    "run_log": (["get", "post"], ["get", "patch"], {"run", "content"}, set()),
    "audit_event": (
        ["get"], ["get"],
        {"dts", "actor", "action", "object_type", "object_id", "project_id", "changes"},
        {"dts", "actor", "action", "object_type", "object_id", "project_id", "changes"},
    ),
}

# The filters each resource must offer.
REQUIRED_FILTERS = {
    "group": {"name"},
    "project": {"id", "title", "project_id"},
    "worker_pool": {"title", "project_id"},
    "worker": {"api_key", "project_id"},
    "job_template": {"title", "project", "project_id"},
    "job": {"title", "job_template", "worker_pool", "project_id"},
    "run": {"state", "schedule_dts", "is_manual", "job", "worker", "worker__api_key",
            "job__job_template", "project_id"},
    "kill_request": {"run", "execute_dts", "enqueue_dts", "run__worker__api_key", "project_id"},
    "run_log": {"run", "project_id"},
    "audit_event": {"actor", "action", "object_type", "object_id", "dts"},
}

FIELD_KEYS = {"type", "nullable", "blank", "readonly", "help_text", "default", "unique"}


def test_index_lists_every_resource(admin):
    index = admin.get("/api/v1/").json
    assert set(index) == set(RESOURCES)
    for name, entry in index.items():
        assert entry == {"list_endpoint": f"/api/v1/{name}/", "schema": f"/api/v1/{name}/schema/"}
        # Both addresses answer.
        assert "objects" in admin.get(entry["list_endpoint"]).json
        assert "fields" in admin.get(entry["schema"]).json


def test_index_allows_get_only(admin):
    res = admin.request("DELETE", "/api/v1/")
    assert_error(res, 405)
    assert res.headers["Allow"] == "GET"


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_schema_describes_the_resource(admin, name):
    list_methods, detail_methods, spec_fields, readonly = RESOURCES[name]
    schema = admin.get(f"/api/v1/{name}/schema/").json
    assert schema["allowed_list_http_methods"] == list_methods
    assert schema["allowed_detail_http_methods"] == detail_methods
    assert schema["default_format"] == "application/json"
    assert schema["default_limit"] == 200
    fields = schema["fields"]
    assert set(fields) == spec_fields | {"id", "resource_uri"}
    for field_name, description in fields.items():
        assert FIELD_KEYS <= set(description), field_name
        assert isinstance(description["nullable"], bool)
        assert isinstance(description["blank"], bool)
        assert isinstance(description["unique"], bool)
        assert isinstance(description["help_text"], str)
        assert description["readonly"] is (field_name in readonly | {"id", "resource_uri"}), field_name
    assert fields["id"]["type"] == "integer"
    assert fields["id"]["unique"] is True
    assert REQUIRED_FILTERS[name] <= set(schema["filtering"])
    assert "id" in schema["ordering"]


def test_schema_field_details(admin):
    run = admin.get("/api/v1/run/schema/").json["fields"]
    assert run["schedule_dts"]["type"] == "datetime"
    assert run["job"]["type"] == "related"
    assert run["job"]["nullable"] is False
    assert run["worker"]["nullable"] is True
    assert run["pid"]["type"] == "integer"
    assert run["return_success"]["type"] == "boolean"
    assert run["schedule_children"]["default"] is True
    assert run["is_manual"]["default"] is False

    worker = admin.get("/api/v1/worker/schema/").json["fields"]
    assert worker["api_key"]["unique"] is True
    assert worker["title"]["unique"] is False
    assert worker["title"]["type"] == "string"
    assert worker["title"]["blank"] is True
    assert worker["concurrent_jobs"]["default"] == 4
    assert "secret" not in worker

    job = admin.get("/api/v1/job/schema/").json["fields"]
    assert job["enqueue_is_enabled"] == {
        **job["enqueue_is_enabled"], "type": "boolean", "default": True, "nullable": False,
    }
    assert job["reschedule_interval"]["nullable"] is True
    assert job["worker_pool"]["help_text"]

    assert admin.get("/api/v1/group/schema/").json["fields"]["name"]["unique"] is True


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_every_advertised_filter_and_ordering_is_accepted(admin, world, name):
    """What schema/ promises, the list honours (and the reverse: see test_filters)."""
    schema = admin.get(f"/api/v1/{name}/schema/").json
    for filter_name, lookups in schema["filtering"].items():
        for lookup in lookups:
            if filter_name == "state":
                query = "state=scheduled"
            elif filter_name == "project_id":
                value = f"{world.project.id},0" if lookup == "in" else str(world.project.id)
                query = f"project_id{'' if lookup == 'exact' else '__' + lookup}={value}"
            elif lookup == "isnull":
                query = f"{filter_name}__isnull=true"
            else:
                # Only the form of the value matters here: a number, a date or a word.
                query = None
            if query is not None:
                res = admin.get(f"/api/v1/{name}/?{query}")
                assert res.status_int == 200, (query, res.text)
    for field_name in schema["ordering"]:
        for prefix in ("", "-"):
            res = admin.get(f"/api/v1/{name}/?order_by={prefix}{field_name}")
            assert res.status_int == 200, (field_name, res.text)


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_schema_is_read_only(admin, method):
    res = admin.request(method, "/api/v1/run/schema/", {})
    assert_error(res, 405)
    assert res.headers["Allow"] == "GET"


def test_unknown_resource_is_404(admin):
    assert_error(admin.get("/api/v1/nothing/", status=404), 404)
    assert_error(admin.get("/api/v1/nothing/schema/", status=404), 404)
    assert_error(admin.get("/api/v2/", status=404), 404)

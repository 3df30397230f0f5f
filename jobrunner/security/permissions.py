"""Permissions and principals (who reaches what: jobrunner.security.reach)."""
import enum


class Permission(str, enum.Enum):
    VIEW = "view"
    # What members of a project's admin groups may do besides looking:
    # schedule a run now, kill a run, switch a job's enqueueing on or off.
    SCHEDULE_RUN = "schedule_run"
    KILL_RUN = "kill_run"
    TOGGLE_JOB = "toggle_job"
    # Any other write: workers on what reaches them, and admins.
    EDIT = "edit"


ADMIN_PRINCIPAL = "role:admin"
PROJECT_ADMIN_PERMISSIONS = (
    Permission.VIEW,
    Permission.SCHEDULE_RUN,
    Permission.KILL_RUN,
    Permission.TOGGLE_JOB,
)
WORKER_PERMISSIONS = PROJECT_ADMIN_PERMISSIONS + (Permission.EDIT,)


def worker_principal(api_key):
    return f"worker:{api_key}"


def group_principal(name):
    return f"group:{name}"

import json
import subprocess
import sys
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[2]

SERVER_PACKAGES = ("sqlalchemy", "pyramid", "transaction", "zope", "colander")
# The one module the worker shares with the server: it has no imports of its own.
SHARED_MODULES = ("jobrunner.signing",)

LIST_MODULES = (
    "import jobrunner.worker.daemon\n"
    "print(json.dumps(sorted(sys.modules)))\n"
)

# Loads the worker without running jobrunner/__init__.py, to check the
# worker's own modules whatever the parent package imports.
BYPASS_PARENT_PACKAGE = (
    "import types\n"
    "package = types.ModuleType('jobrunner')\n"
    f"package.__path__ = [{str(REPO_ROOT / 'jobrunner')!r}]\n"
    "sys.modules['jobrunner'] = package\n"
)


def loaded_modules(prelude=""):
    completed = subprocess.run(
        [sys.executable, "-c", "import json, sys\n" + prelude + LIST_MODULES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def server_modules(modules):
    return [
        name for name in modules
        if name.split(".")[0] in SERVER_PACKAGES
        or (
            name.startswith("jobrunner.")
            and not name.startswith("jobrunner.worker")
            and name not in SHARED_MODULES
        )
    ]


def test_worker_modules_import_nothing_of_the_server():
    modules = loaded_modules(BYPASS_PARENT_PACKAGE)
    assert "jobrunner.worker.daemon" in modules
    assert "requests" in modules
    assert server_modules(modules) == []


def test_importing_the_worker_daemon_loads_no_server_code():
    assert server_modules(loaded_modules()) == []


def test_the_worker_signs_with_the_shared_module():
    assert "jobrunner.signing" in loaded_modules(BYPASS_PARENT_PACKAGE)


def test_a_server_module_in_the_worker_would_be_caught():
    assert server_modules(["jobrunner.signing", "jobrunner.worker.client", "requests"]) == []
    assert server_modules(["jobrunner.models", "jobrunner.worker.client"]) == ["jobrunner.models"]
    assert server_modules(["jobrunner.security.policies"]) == ["jobrunner.security.policies"]

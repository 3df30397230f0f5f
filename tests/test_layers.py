"""Which parts of the package may import which: read from the source with
ast, so a rule holds for every import statement, even one inside a function
that no test happens to run.

A rule is one line: `assert_imports_nothing_of(importer, forbidden...)`.
"""
import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "jobrunner"


def module_files(name):
    """The source files of a module or of every module of a package."""
    path = PACKAGE_ROOT.parent.joinpath(*name.split("."))
    if path.is_dir():
        return sorted(path.rglob("*.py"))
    return [path.with_suffix(".py")]


def module_name(path):
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path):
    """Every module an import statement of the file names, made absolute;
    `from x import y` counts as both x and x.y (y may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def is_within(module, prefix):
    return module == prefix or module.startswith(prefix + ".")


def forbidden_imports(importer, *forbidden):
    """{file: [modules]} of the imports of `importer` that fall under `forbidden`."""
    found = {}
    for path in module_files(importer):
        bad = sorted(m for m in imported_modules(path) if any(is_within(m, f) for f in forbidden))
        if bad:
            found[str(path.relative_to(PACKAGE_ROOT.parent))] = bad
    return found


def assert_imports_nothing_of(importer, *forbidden):
    assert module_files(importer) and all(p.exists() for p in module_files(importer)), importer
    assert forbidden_imports(importer, *forbidden) == {}


def test_the_helpers_see_relative_and_absolute_imports():
    # The rules below are only worth something if the helper finds imports.
    assert "jobrunner.api.resources" in imported_modules(PACKAGE_ROOT / "api" / "query.py")
    assert "jobrunner.security.reach" in imported_modules(PACKAGE_ROOT / "api" / "resources.py")
    assert "sqlalchemy" in imported_modules(PACKAGE_ROOT / "security" / "reach.py")
    assert forbidden_imports("jobrunner.api.views", "jobrunner.api.query")


def test_the_dashboard_imports_nothing_of_the_api():
    assert_imports_nothing_of("jobrunner.dashboard", "jobrunner.api")


def test_reach_imports_nothing_of_the_api_nor_of_views():
    assert_imports_nothing_of("jobrunner.security.reach", "jobrunner.api", "pyramid.view")


def test_shared_queries_import_nothing_of_the_web():
    assert_imports_nothing_of(
        "jobrunner.queries", "jobrunner.api", "jobrunner.dashboard", "pyramid.view"
    )


DOMAIN_MODULES = [
    "jobrunner.scheduling.runs",
    "jobrunner.scheduling.returns",
    "jobrunner.scheduling.duties",
    "jobrunner.scheduling.enqueueable",
    "jobrunner.scheduling.schedule",
    "jobrunner.scheduling.reschedule",
    "jobrunner.scheduling.kills",
    "jobrunner.jobs",
    "jobrunner.values",
    "jobrunner.domain_errors",
]


def test_the_domain_imports_nothing_of_the_web():
    # The scheduling package's includeme and daemon (the loop, its CLI) are
    # the web's and the process's edge; the rules themselves stay plain.
    for module in DOMAIN_MODULES:
        assert_imports_nothing_of(
            module, "jobrunner.api", "jobrunner.dashboard", "pyramid.view", "pyramid.request"
        )


def test_signing_imports_nothing_but_the_standard_library():
    imported = imported_modules(PACKAGE_ROOT / "signing.py")
    assert imported and all(m.split(".")[0] in {"hashlib", "hmac", "re", "time", "secrets", "base64", "typing"}
                            for m in imported), imported

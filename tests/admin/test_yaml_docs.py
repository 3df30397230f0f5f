"""docs/yaml.md documents every key that `jobrunner-admin load` accepts.

The accepted keys are the loader's own: each section's entry spec is read
back from the error the loader gives for an unknown key ("known: ..."), so
a key added to the loader without a line in the docs fails here."""
import re
from pathlib import Path

import pytest

from jobrunner import loader
from jobrunner.loader import LoadError, load

DOCS = Path(__file__).resolve().parents[2] / "docs" / "yaml.md"
UNKNOWN = "no_such_key_for_the_docs_test"


def documented_sections():
    """{section: the text under its `## `section`` heading}."""
    text = DOCS.read_text()
    parts = re.split(r"^## `([a-z_]+)`\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def accepted_keys(dbsession, section):
    with pytest.raises(LoadError) as error:
        load(dbsession, {section: [{UNKNOWN: 1}]})
    match = re.search(r"\(known: ([^)]*)\)", str(error.value))
    assert match, f"the loader's error for an unknown key no longer lists the known ones: {error.value}"
    return [key.strip() for key in match.group(1).split(",")]


def test_every_section_of_the_loader_has_its_heading():
    assert set(documented_sections()) >= set(loader.SECTIONS)


@pytest.mark.parametrize("section", [s for s in loader.SECTIONS if s != "groups"])
def test_every_key_the_loader_accepts_is_documented(dbsession, section):
    keys = accepted_keys(dbsession, section)
    assert len(keys) >= 3
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", documented_sections()[section], flags=re.M))
    assert set(keys) - documented == set(), f"docs/yaml.md, section {section}, lacks these keys"
    assert documented - set(keys) == set(), f"docs/yaml.md, section {section}, names keys the loader refuses"


def test_the_keys_of_a_reschedule_exclude_are_documented(dbsession):
    text = documented_sections()["jobs"]
    assert "`{start_time, end_time, note}`" in text
    # ... and the loader takes no other.
    with pytest.raises(LoadError, match=UNKNOWN):
        load(dbsession, {"jobs": [{"project": "p", "title": "t", "reschedule_excludes": [
            {"start_time": "01:00", "end_time": "02:00", UNKNOWN: 1}]}]})


def test_the_docs_and_readme_name_nothing_outside_the_repository():
    root = DOCS.parent.parent
    for path in [root / "README.md", *sorted(DOCS.parent.glob("*.md"))]:
        assert not re.search(r"\bSPEC\b", path.read_text()), f"{path.name} refers to a document not in the repository"

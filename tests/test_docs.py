import os

from jobrunner.api.reference import render

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_api_reference_matches_the_schemas():
    with open(os.path.join(HERE, "docs", "api-resources.md")) as f:
        assert f.read().strip() == render().strip(), (
            "docs/api-resources.md is stale: python -m jobrunner.api.reference > docs/api-resources.md"
        )

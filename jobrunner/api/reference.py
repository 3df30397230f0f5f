"""Writes docs/api.md's resource reference from the colander schemas, so the
reference cannot drift from the code (a test compares them).

    python -m jobrunner.api.reference > docs/api-resources.md
"""
from .fields import describe
from .query import DEFAULT_LIMIT, MAX_LIMIT, STATE_NAMES
from .resources import LOOKUPS, PROJECT_FILTER_TYPES, RESOURCE_TYPES


def render():
    out = [
        "# REST resources",
        "",
        "Generated from the colander schemas by `python -m jobrunner.api.reference`;",
        "do not edit by hand. Every object also has `id` and `resource_uri`.",
        f"Lists take `limit` (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}), `offset` and `order_by`.",
        f"Filter lookups: `{'`, `'.join(LOOKUPS)}` (`field__lookup=value`).",
        "",
    ]
    for name, rt in RESOURCE_TYPES.items():
        out += [
            f"## `{name}`",
            "",
            f"`/api/v1/{name}/`: list {', '.join(m.upper() for m in rt.list_methods)};"
            f" detail {', '.join(m.upper() for m in rt.detail_methods)}.",
            "",
            "| field | type | nullable | read-only | notes |",
            "|---|---|---|---|---|",
        ]
        for node in rt.schema.children:
            entry = describe(node)
            kind = entry["type"]
            if "related_type" in entry:
                kind = f"{entry['related_type']} `{entry['related_resource']}`"
            notes = entry["help_text"]
            if node.required_on_create:
                notes = ("required on create. " + notes).strip()
            out.append(
                f"| `{node.name}` | {kind} | {'yes' if entry['nullable'] else 'no'} |"
                f" {'yes' if entry['readonly'] else 'no'} | {notes} |"
            )
        filters = list(rt.filtering)
        if name == "run":
            filters.append("state (" + ", ".join(STATE_NAMES) + ")")
        if name in PROJECT_FILTER_TYPES:
            filters.append("project_id")
        out += [
            "",
            "Filters: " + ", ".join(f"`{f}`" for f in filters) + ".",
            "",
            "Ordering: " + ", ".join(f"`{f}`" for f in rt.ordering) + ".",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    print(render())

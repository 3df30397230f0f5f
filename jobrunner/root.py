"""The root of the site: the traversal tree's top, the templates and the
static files.

Packages hang their own subtree below the root with the `add_root_child`
directive (the API hangs `api`), so the root knows none of them.
"""
from .security.reach import COLLECTION_ACL

ROOT_CHILDREN = "jobrunner.root_children"
# Ids in URLs: ASCII digits (str.isdigit() is also true for "²", which int()
# rejects), and at most 18 of them, which every database's BIGINT holds.
MAX_ID_DIGITS = 18


def object_id(key):
    """The id a URL segment names, or None when it names none."""
    if not (key.isascii() and key.isdigit()) or len(key) > MAX_ID_DIGITS:
        return None
    return int(key)


class Root:
    __name__ = ""
    __parent__ = None
    __acl__ = COLLECTION_ACL

    def __init__(self, request):
        self.request = request

    def __getitem__(self, name):
        child = self.request.registry.get(ROOT_CHILDREN, {}).get(name)
        if child is None:
            raise KeyError(name)
        return child(self)


def add_root_child(config, name, factory):
    """Hangs factory(root) below the root as `name`."""
    config.registry.setdefault(ROOT_CHILDREN, {})[name] = factory


def includeme(config):
    config.set_root_factory(Root)
    config.add_directive("add_root_child", add_root_child)
    config.include("pyramid_jinja2")
    config.add_jinja2_renderer(".jinja2")
    config.add_static_view("static", "jobrunner:static", cache_max_age=3600)

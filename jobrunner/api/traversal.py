"""The traversal tree: root -> api -> v1 -> collection -> item."""
from pyramid.authorization import DENY_ALL, Allow, Authenticated

from ..security.permissions import COLLECTION_ACL, Permission
from .resources import RESOURCE_TYPES


class Root:
    __name__ = ""
    __parent__ = None
    __acl__ = [(Allow, Authenticated, Permission.VIEW)]

    def __init__(self, request):
        self.request = request

    def __getitem__(self, name):
        if name == "api":
            return ApiRoot(self)
        raise KeyError(name)


class ApiRoot:
    __name__ = "api"
    __acl__ = COLLECTION_ACL

    def __init__(self, parent):
        self.__parent__ = parent
        self.request = parent.request

    def __getitem__(self, name):
        if name == "v1":
            return ApiV1(self)
        raise KeyError(name)


class ApiV1:
    __name__ = "v1"
    __acl__ = COLLECTION_ACL

    def __init__(self, parent):
        self.__parent__ = parent
        self.request = parent.request

    def __getitem__(self, name):
        return Collection(self, RESOURCE_TYPES[name])


class Collection:
    __acl__ = COLLECTION_ACL

    def __init__(self, parent, resource_type):
        self.__parent__ = parent
        self.__name__ = resource_type.name
        self.request = parent.request
        self.resource_type = resource_type

    def __getitem__(self, key):
        # isascii: str.isdigit() is true for "²" and other digits int() rejects or reads.
        if not (key.isascii() and key.isdigit()) or len(key) > 18:
            raise KeyError(key)
        obj = self.request.dbsession.get(self.resource_type.model, int(key))
        if obj is None:
            raise KeyError(key)
        return Item(self, obj)

    def item(self, obj):
        return Item(self, obj)


class Item:
    def __init__(self, collection, obj):
        self.__parent__ = collection
        self.__name__ = str(obj.id)
        self.collection = collection
        self.resource_type = collection.resource_type
        self.obj = obj
        self._acl = None

    @property
    def __acl__(self):
        if self._acl is None:
            # DENY_ALL ends the lookup here: the collection's ACL above lets
            # every authenticated caller VIEW, and must not reach the items.
            self._acl = list(self.resource_type.acl(self.collection.request.dbsession, self.obj))
            self._acl.append(DENY_ALL)
        return self._acl


def item_for(request, resource_name, obj):
    """An Item of any resource, for permission checks on related objects."""
    root = ApiV1(ApiRoot(Root(request)))
    return Item(Collection(root, RESOURCE_TYPES[resource_name]), obj)

"""The API's traversal tree: root -> api -> v1 -> collection -> item.

Anybody logged in may look at the collections (their lists are narrowed to
what the caller reaches); an item's ACL is its reach's, ending in DENY_ALL.
"""
from ..root import Root, object_id
from ..security.reach import COLLECTION_ACL
from .resources import RESOURCE_TYPES


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
        id_ = object_id(key)
        rt = self.resource_type
        obj = None if id_ is None else self.request.dbsession.get(rt.model, id_, options=rt.item_options())
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
        # Fields an answer carries beside the object's own (a claim's script).
        self.answer_extra = {}

    @property
    def __acl__(self):
        if self._acl is None:
            request = self.collection.request
            self._acl = self.resource_type.reach.acl(request.dbsession, self.obj, request.identity)
        return self._acl


def item_for(request, resource_name, obj):
    """An Item of any resource, for permission checks on related objects."""
    root = ApiV1(ApiRoot(Root(request)))
    return Item(Collection(root, RESOURCE_TYPES[resource_name]), obj)

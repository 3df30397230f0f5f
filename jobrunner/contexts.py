"""The dashboard's traversal contexts: `/jobs/{id}` and `/runs/{id}` find
their object through a route factory, and the object's ACL (its reach's,
ending in DENY_ALL) decides what the page's view may do."""
from pyramid.authorization import DENY_ALL

from .models import Job, Run
from .root import object_id
from .security.reach import COLLECTION_ACL, JOB, RUN, Reach


class ObjectContext:
    """One object, with the ACL its reach gives."""

    def __init__(self, parent, obj):
        self.__parent__ = parent
        self.__name__ = str(obj.id)
        self.obj = obj
        self._acl = None

    @property
    def __acl__(self):
        if self._acl is None:
            self._acl = self.__parent__.reach.acl(self.__parent__.request.dbsession, self.obj)
        return self._acl


class Missing:
    """No such object. Like any page, a visitor who is not logged in is sent
    to log in first; who is logged in is told there is nothing here."""

    __acl__ = COLLECTION_ACL + [DENY_ALL]

    def __init__(self, parent, key):
        self.__parent__ = parent
        self.__name__ = key


class ObjectFactory:
    """The root of one route's tree: its only children are the objects."""

    __name__ = ""
    __parent__ = None
    __acl__ = [DENY_ALL]
    model = None
    reach = None

    def __init__(self, request):
        self.request = request

    def __getitem__(self, key):
        id_ = object_id(key)
        obj = None if id_ is None else self.request.dbsession.get(self.model, id_)
        if obj is None:
            return Missing(self, key)
        return ObjectContext(self, obj)


class JobFactory(ObjectFactory):
    model = Job
    reach = Reach(JOB)


class RunFactory(ObjectFactory):
    model = Run
    reach = Reach(RUN)

"""The admin pages' tree: /admin/ -> /admin/<resource>/ -> /admin/<resource>/<id>/.

Each context's ACL ends in DENY_ALL: what a context does not allow is
refused, whatever the root factory of the rest of the site allows.
"""
from pyramid.authorization import ALL_PERMISSIONS, DENY_ALL, Allow
from sqlalchemy import select

from ..api.resources import RESOURCE_TYPES
from ..root import object_id
from ..security.permissions import ADMIN_PRINCIPAL, Permission
from .managed import in_managed_projects
from .specs import RESOURCES


def _user_principal(request):
    identity = request.identity
    return f"user:{identity.user.id}" if identity is not None and identity.user is not None else None


class AdminRoot:
    """/admin/: administrators, and the members of a project's admin groups."""

    __name__ = "admin"
    __parent__ = None

    def __init__(self, request):
        self.request = request

    @property
    def __acl__(self):
        acl = [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS)]
        principal = _user_principal(self.request)
        if principal and self.request.may_use_admin:
            acl.append((Allow, principal, Permission.MANAGE))
        return acl + [DENY_ALL]

    def __getitem__(self, name):
        resource = RESOURCES.get(name)
        if resource is None:
            raise KeyError(name)
        return AdminCollection(self, resource)


class AdminCollection:
    """/admin/<resource>/: templates and jobs for project admins too (each
    only sees and offers his projects'), the rest for administrators."""

    def __init__(self, parent, resource):
        self.__parent__ = parent
        self.__name__ = resource.name
        self.request = parent.request
        self.resource = resource

    @property
    def __acl__(self):
        acl = [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS)]
        if not self.resource.admin_only:
            acl += [ace for ace in self.__parent__.__acl__ if ace[2] == Permission.MANAGE]
        return acl + [DENY_ALL]

    def query(self):
        model = self.resource.model
        query = select(model).order_by(*self.resource.order_by, model.id)
        if not self.resource.admin_only:
            query = in_managed_projects(self.request, query, model)
        return query

    def __getitem__(self, key):
        id_ = object_id(key)
        if id_ is None:
            raise KeyError(key)
        model = self.resource.model
        # Who may not use the admin pages at all is refused by the ACL (a
        # login form or a 403 page); a project admin asking for another
        # project's object finds nothing, as if it did not exist.
        query = self.query() if self.request.may_use_admin else select(model)
        obj = self.request.dbsession.scalar(query.where(model.id == id_))
        if obj is None:
            raise KeyError(key)
        return AdminItem(self, obj)


class AdminItem:
    """/admin/<resource>/<id>/: the object's project decides, as for the API."""

    def __init__(self, collection, obj):
        self.__parent__ = collection
        self.__name__ = str(obj.id)
        self.request = collection.request
        self.resource = collection.resource
        self.obj = obj

    @property
    def __acl__(self):
        if self.resource.admin_only:
            return [(Allow, ADMIN_PRINCIPAL, ALL_PERMISSIONS), DENY_ALL]
        # The reach's ACL (ending in DENY_ALL) gives the admin groups MANAGE.
        return RESOURCE_TYPES[self.resource.name].reach.acl(self.request.dbsession, self.obj)

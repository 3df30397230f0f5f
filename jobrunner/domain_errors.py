"""The errors of the domain rules, whoever calls them (the REST API, the
set-up loader, the scheduler). They say what is wrong in the domain's words;
the API maps each kind to one HTTP status in one exception view."""


class DomainError(Exception):
    """A rule refused a change; nothing was changed by it."""

    def __init__(self, message, errors=None):
        super().__init__(message)
        self.message = message
        self.errors = dict(errors or {})


class InvalidFields(DomainError):
    """Values break a rule of the data model; `errors` maps each field to why."""

    def __init__(self, errors, message="Invalid fields."):
        super().__init__(message, errors)


class NotAllowed(DomainError):
    """The caller may not do this (a worker claiming for another, say)."""


class NotHolder(NotAllowed):
    """Only the worker that holds a run's claim may change its progress."""

    def __init__(self, message="Only the worker that holds this run may do that."):
        super().__init__(message)


class RunConflict(DomainError):
    """The run's state does not allow what was asked (claimed, returned...)."""

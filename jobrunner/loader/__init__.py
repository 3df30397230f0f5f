"""Declarative set-up: load and dump groups, users, workers, pools, projects,
templates and jobs in one YAML format (`jobrunner-admin load` and `dump`).

Every object is found by its natural key: group name, username, worker
api_key, pool title, project title, template (project, title) and job
(project, title). An entry creates the object or updates it; a key left out of
an entry leaves that field of an existing object as it is (and takes the
model's default on a new one), a key given replaces the field, lists included.
Objects that the file does not mention are left alone: loading never deletes.
So loading the same file twice changes nothing, and ``dump`` → ``load`` →
``dump`` is stable.

Everything happens in one savepoint: an invalid file changes nothing, and the
error names the offending entry, e.g.
``jobs[2] (Test job 1): worker_pool 'Pool 9' is not one of the project's pools``.
Jobs keep the same rules as in the REST API (jobrunner.jobs).

Users' passwords are never dumped; a user entry without ``password`` keeps the
password it has. Worker runtime state (last ping, version) may be loaded but is
not dumped, as loading an old dump would otherwise make a live worker look
unresponsive.

The package: ``format`` (YAML and the value converters), ``load`` (the
section table and its one create-or-update step), ``dump``.
"""
from .dump import dump
from .format import LoadError, parse_yaml, to_yaml
from .load import SECTIONS, Change, load

__all__ = ["SECTIONS", "Change", "LoadError", "dump", "load", "parse_yaml", "to_yaml"]

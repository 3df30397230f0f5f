"""`jobrunner-admin CONFIG_URI COMMAND ...`: set-up and everyday administration.

Exit status: 0 done, 1 the command failed (a bad file, an unknown name, no
database), 2 the command line is wrong. Each command runs in one transaction:
it changes everything it reports, or nothing.

The database layers are imported by the commands that use them, so that
`--help` and usage errors answer at once.
"""
import argparse
import contextlib
import getpass
import os
import secrets
import stat
import sys
from zoneinfo import ZoneInfoNotFoundError

PROG = "jobrunner-admin"
DEFAULT_BASE_URL = "http://localhost:6543"


class CommandError(Exception):
    """The command could not do what it was asked (exit status 1)."""


class Context:
    """What a command works with: the settings (a jobrunner.settings.Settings)
    and a database session."""

    def __init__(self, settings):
        self.settings = settings
        self.stdin = sys.stdin
        self.stdout = sys.stdout
        self.stderr = sys.stderr
        self._engine = None

    @property
    def database_url(self):
        url = self.settings.database_url
        if not url:
            raise CommandError("the settings have no sqlalchemy.url")
        return url

    @property
    def engine(self):
        if self._engine is None:
            from .models import get_engine

            self._engine = get_engine({**self.settings.ini, "sqlalchemy.url": self.database_url})
        return self._engine

    @property
    def time_zone_name(self):
        return self.settings.timezone

    @property
    def zone(self):
        try:
            return self.settings.tz
        except (ZoneInfoNotFoundError, ValueError):
            raise CommandError(f"unknown jobrunner.timezone {self.time_zone_name!r}") from None

    @property
    def base_url(self):
        return self.settings.base_url

    @contextlib.contextmanager
    def session(self, write=False):
        """One transaction: committed when the block ends normally."""
        from .audit import actor_of_os_user, os_user_name, set_actor
        from .models import begin_write, get_session_factory

        session = get_session_factory(self.engine)()
        try:
            if write:
                # Every change a command makes is audited as the OS user's.
                set_actor(session, actor_of_os_user(os_user_name()))
                begin_write(session)
            yield session
            if write:
                session.commit()
        finally:
            session.close()

    def print(self, *args, **kwargs):
        print(*args, file=self.stdout, **kwargs)

    def note(self, *args):
        print(*args, file=self.stderr)

    def close(self):
        if self._engine is not None:
            self._engine.dispose()


# --- helpers ------------------------------------------------------------------


def _one(session, model, column, value, what):
    from sqlalchemy import select

    obj = session.scalar(select(model).where(column == value))
    if obj is None:
        raise CommandError(f"no {what} {value!r}")
    return obj


def _groups(session, names):
    from .models import Group

    return [_one(session, Group, Group.name, name, "group") for name in dict.fromkeys(names)]


def read_password(context, prompt="Password: "):
    """From a prompt (asked twice) on a terminal, else the first line of stdin;
    never from the command line, where other users see it in `ps`."""
    if context.stdin.isatty():
        password = getpass.getpass(prompt)
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the passwords do not match")
    else:
        password = context.stdin.readline().rstrip("\r\n")
    if not password:
        raise CommandError("the password must not be empty")
    return password


def _local(context, dts):
    if dts is None:
        return "-"
    return dts.astimezone(context.zone).strftime("%Y-%m-%d %H:%M:%S")


def _yes_no(value):
    return "yes" if value else "no"


def print_table(context, headers, rows):
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)]
    for row in [list(headers)] + rows:
        context.print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def new_worker_credentials():
    """A new (api_key, secret) pair for a worker."""
    return secrets.token_hex(16), secrets.token_urlsafe(32)


def worker_ini(base_url, api_key, secret, concurrent_jobs, title="", **options):
    """A worker's ini file: its [jobrunner_worker] section with the server's
    address, the worker's key and secret, and further options."""
    heading = f"# Job-Runner worker{' ' + repr(title) if title else ''}. This file holds the\n"
    options = {"concurrent_jobs": concurrent_jobs, "log_level": "info", **options}
    return (
        heading
        + "# worker's secret: keep it readable by the worker's user only.\n"
        "[jobrunner_worker]\n"
        f"api_base_url = {base_url}\n"
        f"api_key = {api_key}\n"
        f"secret = {secret}\n"
        + "".join(f"{name} = {value}\n" for name, value in options.items())
    )


def new_worker_ini(settings, api_key, secret, concurrent_jobs, title=""):
    """The ini a new worker gets (the CLI's add-worker, the admin pages): the
    server's base URL, and a ping as often as the scheduler expects one."""
    return worker_ini(settings.base_url or DEFAULT_BASE_URL, api_key, secret, concurrent_jobs, title,
                      ping_interval=f"{settings.ping_interval:g}")


def write_private_file(path, text):
    """Writes ``text`` to a new file at ``path``, readable by its owner only.

    A symbolic link at ``path`` is refused, never followed: someone who can
    write to the folder must not make the secret land in a file of theirs.
    A regular file there is replaced by a new one.
    """
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise CommandError(f"{path} is a symbolic link; refusing to write a secret through it")
        os.unlink(path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise CommandError(f"{path} appeared while it was being written; not overwriting it")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


# --- commands -----------------------------------------------------------------


def init_db(context, args):
    from .migrations import upgrade

    url = context.database_url
    if url.startswith("sqlite:///") and not url.endswith(":memory:"):
        # SQLite creates the file; its folder is ours to make (zero set-up).
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///"):]))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise CommandError(f"cannot create the folder of the SQLite database {folder}: "
                               f"{exc.strerror or exc}") from None
    upgrade(url)
    context.print("The database schema is up to date.")


def load_file(context, args):
    from . import loader

    if args.file == "-":
        text = context.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    data = loader.parse_yaml(text)
    with context.session(write=True) as session:
        changes = loader.load(session, data, context.time_zone_name)
        for change in changes:
            context.print(str(change))
        if args.dry_run:
            session.rollback()
            context.print(f"{len(changes)} change(s) found; --dry-run: nothing was stored.")
            return
    context.print(f"{len(changes)} change(s)." if changes else "No changes.")


def dump_file(context, args):
    from . import loader

    with context.session() as session:
        text = loader.to_yaml(loader.dump(session))
    if args.file in (None, "-"):
        context.stdout.write(text)
    else:
        # The dump holds the workers' secrets.
        write_private_file(args.file, text)
        context.note(f"Wrote {args.file}.")


def _check_new_user(session, args):
    from sqlalchemy import select

    from .models import User

    if session.scalar(select(User.id).where(User.username == args.username)) is not None:
        raise CommandError(f"the user {args.username!r} exists already; "
                           "use set-password to change the password")
    return _groups(session, args.group)


def add_user(context, args):
    from .models import User
    from .security.passwords import hash_password

    # Checked before the prompt (so nobody types a password in vain) and
    # again in the writing transaction, which must not wait for a person:
    # on SQLite it holds the database's write lock.
    with context.session() as session:
        _check_new_user(session, args)
    password_hash = hash_password(read_password(context))
    with context.session(write=True) as session:
        groups = _check_new_user(session, args)
        session.add(User(username=args.username, password_hash=password_hash,
                         email=args.email, is_admin=args.admin, is_active=True, groups=groups))
    kind = "Administrator" if args.admin else "User"
    context.print(f"{kind} {args.username!r} added.")


def set_password(context, args):
    from .models import User
    from .security.passwords import hash_password

    with context.session() as session:
        _one(session, User, User.username, args.username, "user")
    password_hash = hash_password(read_password(context, "New password: "))
    with context.session(write=True) as session:
        user = _one(session, User, User.username, args.username, "user")
        user.password_hash = password_hash
    context.print(f"Password of {args.username!r} changed.")


def add_group(context, args):
    from sqlalchemy import select

    from .models import Group

    with context.session(write=True) as session:
        if session.scalar(select(Group.id).where(Group.name == args.name)) is not None:
            raise CommandError(f"the group {args.name!r} exists already")
        session.add(Group(name=args.name))
    context.print(f"Group {args.name!r} added.")


def add_worker(context, args):
    from .models import Worker, WorkerPool

    if not context.base_url:
        context.note(f"jobrunner.base_url is not set; the worker ini says {DEFAULT_BASE_URL}: "
                     "change api_base_url if the worker runs elsewhere.")
    api_key, secret = new_worker_credentials()
    with context.session(write=True) as session:
        pools = [_one(session, WorkerPool, WorkerPool.title, title, "worker pool")
                 for title in dict.fromkeys(args.pool)]
        worker = Worker(title=args.title, description="", api_key=api_key, secret=secret,
                        enqueue_is_enabled=True, concurrent_jobs=args.concurrent_jobs,
                        worker_version="", pools=pools)
        session.add(worker)
        session.flush()
        worker_id = worker.id
    text = new_worker_ini(context.settings, api_key, secret, args.concurrent_jobs, args.title)
    if args.output:
        write_private_file(args.output, text)
        context.note(f"Worker {args.title!r} (id {worker_id}) added; its ini is {args.output}.")
    else:
        context.note(f"Worker {args.title!r} (id {worker_id}) added. Its ini file:")
        context.stdout.write(text)


LIST_KINDS = ("users", "groups", "workers", "pools", "projects", "jobs")


def list_objects(context, args):
    from sqlalchemy import func, select
    from sqlalchemy.orm import selectinload

    from .models import Group, Job, JobTemplate, Project, Run, User, Worker, WorkerPool
    from .models.tables import user_groups

    def names(objects, attr="title"):
        return ", ".join(getattr(obj, attr) for obj in objects) or "-"

    with context.session() as session:
        if args.kind == "users":
            headers = ("USERNAME", "EMAIL", "ADMIN", "ACTIVE", "GROUPS")
            users = session.scalars(select(User).order_by(User.username)
                                    .options(selectinload(User.groups)))
            rows = [(u.username, u.email or "-", _yes_no(u.is_admin), _yes_no(u.is_active),
                     names(u.groups, "name")) for u in users]
        elif args.kind == "groups":
            headers = ("NAME", "USERS")
            rows = session.execute(
                select(Group.name, func.count(user_groups.c.user_id))
                .outerjoin(user_groups, user_groups.c.group_id == Group.id)
                .group_by(Group.id, Group.name).order_by(Group.name)
            ).all()
        elif args.kind == "workers":
            headers = ("ID", "TITLE", "API_KEY", "ENABLED", "JOBS", "LAST_PING", "POOLS")
            workers = session.scalars(select(Worker).order_by(Worker.title, Worker.id)
                                      .options(selectinload(Worker.pools)))
            rows = [(w.id, w.title, w.api_key, _yes_no(w.enqueue_is_enabled), w.concurrent_jobs,
                     _local(context, w.ping_response_dts), names(w.pools)) for w in workers]
        elif args.kind == "pools":
            headers = ("TITLE", "ENABLED", "WORKERS", "PROJECTS")
            pools = session.scalars(select(WorkerPool).order_by(WorkerPool.title).options(
                selectinload(WorkerPool.workers), selectinload(WorkerPool.projects)))
            rows = [(p.title, _yes_no(p.enqueue_is_enabled), names(p.workers), names(p.projects))
                    for p in pools]
        elif args.kind == "projects":
            headers = ("TITLE", "ENABLED", "POOLS", "VIEWERS", "ADMINS")
            projects = session.scalars(select(Project).order_by(Project.title).options(
                selectinload(Project.worker_pools), selectinload(Project.groups),
                selectinload(Project.auth_groups)))
            rows = [(p.title, _yes_no(p.enqueue_is_enabled), names(p.worker_pools),
                     names(p.groups, "name"), names(p.auth_groups, "name")) for p in projects]
        else:
            headers = ("PROJECT", "TEMPLATE", "TITLE", "POOL", "EVERY", "ENABLED", "NEXT_RUN")
            next_runs = dict(session.execute(
                select(Run.job_id, func.min(Run.schedule_dts))
                .where(Run.return_dts.is_(None)).group_by(Run.job_id)
            ).all())
            jobs = session.execute(
                select(Job, JobTemplate.title, Project.title).join(Job.job_template)
                .join(JobTemplate.project).order_by(Project.title, JobTemplate.title, Job.title)
                .options(selectinload(Job.worker_pool))
            )
            rows = [(project, template, job.title, job.worker_pool.title, _every(job),
                     _yes_no(job.enqueue_is_enabled), _local(context, next_runs.get(job.id)))
                    for job, template, project in jobs]
        print_table(context, headers, rows)


def _every(job):
    if job.reschedule_interval is None:
        return "-"
    return f"{job.reschedule_interval} {job.reschedule_interval_type.value}"


def schedule(context, args):
    from sqlalchemy import select

    from .audit import record_schedule
    from .models import Job, JobTemplate, Project, utcnow
    from .scheduling.runs import create_run

    with context.session(write=True) as session:
        query = (select(Job, Project.title).join(Job.job_template).join(JobTemplate.project)
                 .where(Job.title == args.job_title).order_by(Project.title))
        if args.project is not None:
            _one(session, Project, Project.title, args.project, "project")
            query = query.where(Project.title == args.project)
        matches = session.execute(query).all()
        where = f" in project {args.project!r}" if args.project is not None else ""
        if not matches:
            raise CommandError(f"no job {args.job_title!r}{where}")
        if len(matches) > 1:
            projects = sorted({project for _, project in matches})
            hint = ("give --project" if args.project is None and len(projects) > 1
                    else "its project has jobs of this title in several templates")
            raise CommandError(f"{len(matches)} jobs are titled {args.job_title!r}{where} "
                               f"(projects: {', '.join(projects)}); {hint}")
        job, project = matches[0]
        run = create_run(session, job, utcnow(), is_manual=True,
                         schedule_children=not args.no_children)
        record_schedule(session, run)
        run_id = run.id
    children = "" if not args.no_children else " (its children will not follow)"
    context.print(f"Scheduled run {run_id} of job {args.job_title!r} "
                  f"(project {project!r}) for now{children}.")


# --- the command line ---------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _not_empty(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Set up and administer a Job-Runner installation.",
        epilog=f"'{PROG} CONFIG_URI COMMAND --help' describes a command.",
    )
    parser.add_argument("config_uri", metavar="CONFIG_URI",
                        help="the server's paste ini file, e.g. development.ini")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name, handler, help_text, description=None):
        sub = commands.add_parser(name, help=help_text, description=description or help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("init-db", init_db, "create or upgrade the tables",
            "Create the tables, or upgrade them to this version's schema. The database "
            "itself must exist (on PostgreSQL, create it first).")

    sub = command("load", load_file, "load a set-up file (YAML)",
                  "Create or update groups, users, workers, pools, projects, templates and "
                  "jobs from a YAML file. Loading the same file twice changes nothing; an "
                  "invalid file changes nothing and names the wrong entry.")
    sub.add_argument("file", metavar="FILE", help="the YAML file, or - for stdin")
    sub.add_argument("--dry-run", action="store_true",
                     help="show what would change, store nothing")

    sub = command("dump", dump_file, "write the set-up as YAML",
                  "Write everything that 'load' reads, in the same format (users without "
                  "passwords; workers with their secrets).")
    sub.add_argument("file", metavar="FILE", nargs="?",
                     help="the file to write (readable by its owner only); stdout by default")

    sub = command("add-user", add_user, "add a user",
                  "Add a user. The password is asked for on a terminal, or read as the first "
                  "line of stdin (never from the command line).")
    sub.add_argument("username", metavar="USERNAME", type=_not_empty)
    sub.add_argument("--email", default="", help="the user's mail address")
    sub.add_argument("--admin", action="store_true",
                     help="a superuser: sees and may do everything")
    sub.add_argument("--group", metavar="G", action="append", default=[],
                     help="a group the user belongs to (repeatable)")

    sub = command("set-password", set_password, "change a user's password",
                  "Change a user's password: asked for on a terminal, or read as the first "
                  "line of stdin.")
    sub.add_argument("username", metavar="USERNAME")

    sub = command("add-group", add_group, "add a group")
    sub.add_argument("name", metavar="NAME", type=_not_empty)

    sub = command("add-worker", add_worker, "add a worker and print its ini file",
                  "Add a worker with a new random api key and secret, and print the "
                  "[jobrunner_worker] ini file that the worker daemon needs.")
    sub.add_argument("title", metavar="TITLE", type=_not_empty)
    sub.add_argument("--pool", metavar="P", action="append", default=[],
                     help="a worker pool (by title) the worker joins (repeatable)")
    sub.add_argument("--concurrent-jobs", metavar="N", type=_positive_int, default=4,
                     help="runs the worker executes at once (default 4)")
    sub.add_argument("--output", "-o", metavar="FILE",
                     help="write the ini to FILE (readable by its owner only) instead of stdout")

    sub = command("list", list_objects, "list users, groups, workers, pools, projects or jobs")
    sub.add_argument("kind", choices=LIST_KINDS)

    sub = command("schedule", schedule, "schedule a manual run of a job now",
                  "Schedule a manual run of a job now. A manual run does not shift the job's "
                  "recurring schedule.")
    sub.add_argument("job_title", metavar="JOB_TITLE")
    sub.add_argument("--project", metavar="P", help="the job's project (when the title is "
                                                    "used in several projects)")
    sub.add_argument("--no-children", action="store_true",
                     help="do not schedule the job's children when the run completes")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)  # a usage error exits with 2 here

    from pyramid.paster import setup_logging
    from sqlalchemy.exc import SQLAlchemyError

    from .loader import LoadError
    from .settings import MissingEnvironment, load_settings

    context = None
    try:
        try:
            settings = load_settings(args.config_uri)
            setup_logging(args.config_uri)
        except (OSError, ValueError, LookupError, MissingEnvironment) as exc:
            raise CommandError(f"cannot read the settings of {args.config_uri}: {exc}") from None
        context = Context(settings)
        args.handler(context, args)
        return 0
    except (CommandError, LoadError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"{PROG}: database error: {getattr(exc, 'orig', None) or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing was stored.", file=sys.stderr)
        return 130
    finally:
        if context is not None:
            context.close()


if __name__ == "__main__":
    sys.exit(main())

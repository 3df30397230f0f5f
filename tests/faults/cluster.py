"""A PostgreSQL cluster of the fault suite's own, so that restarting it or
ending its connections cannot hurt other tests on the machine's server.

initdb and pg_ctl come from /usr/lib/postgresql/<version>/bin and run as the
`postgres` user (PostgreSQL refuses to run as root) in a temporary folder,
listening on 127.0.0.1 on a free port with trust authentication.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile

from sqlalchemy import create_engine, text

from bench.stack import free_port

OWNER = "postgres"


def binaries():
    """The newest installed PostgreSQL's bin folder, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda path: int(path.split("/")[4]) if path.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def missing():
    """Why a private cluster cannot be made here, or None."""
    if binaries() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if shutil.which("runuser") is None:
        return "runuser is missing (needed to run PostgreSQL as its own user)"
    try:
        pwd.getpwnam(OWNER)
    except KeyError:
        return f"no {OWNER!r} user to run PostgreSQL as"
    if os.geteuid() != 0:
        return "not root: cannot run PostgreSQL as the postgres user"
    return None


class PrivateCluster:
    def __init__(self):
        self.bin = binaries()
        self.root = tempfile.mkdtemp(prefix="jobrunner-faults-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.port = free_port()
        owner = pwd.getpwnam(OWNER)
        os.chmod(self.root, 0o755)
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._as_owner("initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                       "--no-sync", "-E", "UTF8")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                # A throwaway cluster: durability buys nothing but slowness.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, program, *args):
        subprocess.run(["runuser", "-u", OWNER, "--", os.path.join(self.bin, program), *args],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)

    def pg_ctl(self, *args):
        self._as_owner("pg_ctl", "-D", self.data, "-l", self.log, "-w", *args)

    def start(self):
        self.pg_ctl("start")

    def stop(self):
        self.pg_ctl("stop", "-m", "fast")

    def restart(self):
        self.pg_ctl("restart", "-m", "fast")

    def terminate_backends(self, database):
        """Ends every connection to `database`; returns how many there were."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                return len(conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": database}).all())
        finally:
            engine.dispose()

    def close(self):
        try:
            self.pg_ctl("stop", "-m", "immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

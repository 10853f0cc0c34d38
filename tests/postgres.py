"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder.

It listens on a unix socket only (no TCP port to collide with), with fsync off, and is
stopped and deleted after the session. Where the server binaries are missing the tests
that use it are skipped, saying how to get them (.ci/run installs Debian's postgresql).
PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_numbers = itertools.count()


def server_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _as_server_user(uid: int | None) -> dict[str, object]:
    if uid is None:
        return {}
    entry = pwd.getpwuid(uid)

    def drop() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(uid)

    return {"preexec_fn": drop, "env": {**os.environ, "HOME": entry.pw_dir}}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The conninfo URL of a running server (database `postgres`, user `casematch`)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install \"casematch[postgres]\"")
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                    "apt-get install postgresql (.ci/run does this as root)")
    uid: int | None = None
    base = Path(tempfile.mkdtemp(prefix="casematch-pg-"))
    if os.geteuid() == 0:
        try:
            uid = pwd.getpwnam("postgres").pw_uid
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no `postgres` user to run the server")
        os.chown(base, uid, pwd.getpwuid(uid).pw_gid)
    data, log = base / "data", base / "server.log"
    run = _as_server_user(uid)
    try:
        subprocess.run([str(binaries / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "casematch", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, **run)  # type: ignore[call-overload]
        options = f"-k {base} -c listen_addresses='' -F -c max_connections=200"
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o",
                        options, "-w", "-t", "60", "start"],
                       check=True, capture_output=True, **run)  # type: ignore[call-overload]
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        if log.exists():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start the test PostgreSQL server: {detail}")
    try:
        yield f"postgresql://casematch@/postgres?host={base}"
    finally:
        subprocess.run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, **run)  # type: ignore[call-overload]
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server: one per test, so tests share no rows."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server_url.replace("/postgres?", f"/{name}?", 1)

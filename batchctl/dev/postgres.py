"""The machine's PostgreSQL (Debian's ``postgresql`` package), or the one ``DATABASE_URL``
names.

With ``DATABASE_URL`` set, that server is only checked. Otherwise the package is installed
with apt-get when absent, a cluster is started with ``pg_ctlcluster``, and a login role and a
database for the project are created. A cluster started here is stopped by ``dev down``;
one that was already running is left alone.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from batchctl.dev.errors import DevServiceError
from batchctl.dev.settings import DevSettings
from storage.engine import make_engine


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str
    port: int
    online: bool


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


def _ensure_installed() -> None:
    if shutil.which("pg_ctlcluster") and Path("/usr/lib/postgresql").exists():
        return
    if os.geteuid() != 0:
        raise DevServiceError(
            "PostgreSQL is not installed; as root run: "
            "apt-get install -y postgresql  (or set DATABASE_URL)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ):
        result = _run(cmd, env=env)
        if result.returncode != 0:
            raise DevServiceError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


def clusters() -> list[Cluster]:
    result = _run(["pg_lsclusters", "--no-header"])
    found = []
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            found.append(Cluster(parts[0], parts[1], int(parts[2]), parts[3].startswith("online")))
    return found


def _ensure_cluster(settings: DevSettings) -> Cluster:
    existing = clusters()
    if not existing:
        versions = sorted(os.listdir("/usr/lib/postgresql"), key=int)
        result = _run(["pg_createcluster", versions[-1], "main"])
        if result.returncode != 0:
            raise DevServiceError(f"pg_createcluster failed: {result.stderr}")
        existing = clusters()
    cluster = next((c for c in existing if c.port == 5432), existing[0])
    if not cluster.online:
        result = _run(["pg_ctlcluster", cluster.version, cluster.name, "start"])
        if result.returncode != 0:
            raise DevServiceError(
                f"pg_ctlcluster {cluster.version} {cluster.name} start "
                f"failed:\n{result.stderr}{result.stdout}"
            )
        settings.dir.mkdir(parents=True, exist_ok=True)
        (settings.dir / "postgres-started").write_text(f"{cluster.version} {cluster.name}")
    return Cluster(cluster.version, cluster.name, cluster.port, True)


def _psql_as_superuser(cluster: Cluster, sql: str) -> str:
    cmd = [
        "psql",
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-p",
        str(cluster.port),
        "-d",
        "postgres",
        "-c",
        sql,
    ]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    result = _run(cmd)
    if result.returncode != 0:
        raise DevServiceError(f"psql failed ({sql[:60]}...): {result.stderr.strip()}")
    return result.stdout.strip()


def _ensure_role_and_database(settings: DevSettings, cluster: Cluster) -> None:
    user, password, db = settings.pg_user, settings.pg_password, settings.pg_database
    _psql_as_superuser(
        cluster,
        f"""DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN
            CREATE ROLE "{user}" LOGIN CREATEDB PASSWORD '{password}';
        END IF; END $$;""",
    )
    exists = _psql_as_superuser(cluster, f"SELECT 1 FROM pg_database WHERE datname = '{db}'")
    if exists != "1":
        _psql_as_superuser(cluster, f'CREATE DATABASE "{db}" OWNER "{user}"')


def check_reachable(url: str) -> None:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise DevServiceError(
            f"PostgreSQL at {engine.url.render_as_string()} is not reachable: {exc.orig}"
        ) from None
    finally:
        engine.dispose()


def start(settings: DevSettings) -> tuple[str, str]:
    """Make PostgreSQL ready; return the database URL to use and a line describing it."""
    if settings.database_url:
        check_reachable(settings.database_url)
        return settings.database_url, "PostgreSQL from DATABASE_URL is reachable"
    _ensure_installed()
    cluster = _ensure_cluster(settings)
    _ensure_role_and_database(settings, cluster)
    url = settings.local_database_url.replace(":5432/", f":{cluster.port}/")
    check_reachable(url)
    return url, (
        f"PostgreSQL {cluster.version}/{cluster.name} running on port {cluster.port}, "
        f"database {settings.pg_database}"
    )


def stop(settings: DevSettings) -> str:
    marker = settings.dir / "postgres-started"
    if settings.database_url or not marker.exists():
        return "PostgreSQL left running (not started by batchctl)"
    version, name = marker.read_text().split()
    _run(["pg_ctlcluster", version, name, "stop"])
    marker.unlink()
    return f"PostgreSQL {version}/{name} stopped"


def status(settings: DevSettings) -> str:
    if settings.database_url:
        try:
            check_reachable(settings.database_url)
            return "PostgreSQL (DATABASE_URL): reachable"
        except DevServiceError as exc:
            return f"PostgreSQL (DATABASE_URL): {exc}"
    if not shutil.which("pg_lsclusters"):
        return "PostgreSQL: not installed"
    found = clusters()
    if not found:
        return "PostgreSQL: no cluster"
    return "; ".join(
        f"PostgreSQL {c.version}/{c.name}: {'online' if c.online else 'down'} on port {c.port}"
        for c in found
    )

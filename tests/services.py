"""Stand-ins for the cloud storages and databases, each a real server on 127.0.0.1 (no pytest here).

Every class starts one stand-in as a child process in its own process group, on a free loopback
port, with its data in a temporary directory and its output in a log file. ``start()`` returns
once the service answers; ``stop()`` ends it and its process group. The attributes a test needs
(endpoint, keys, DSN, connect arguments) and the Airflow connection in the shape the Apache
provider's hook expects (:meth:`airflow_connection`) are on each object.

What each stand-in can and cannot do is in ``docs/stand-ins.md``; how they are installed is in
``dev/services/install.sh``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from support import LOOPBACK, ServiceProcess, free_port, wait_for_http

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = REPO_ROOT / ".services"
INSTALL_HINT = "run `bash dev/setup.sh` (or `bash dev/services/install.sh`) first"

#: The project id used by the GCS and BigQuery emulators and the ``google_cloud_platform`` connection.
GCP_PROJECT = "batchpred-test"

_started: weakref.WeakSet[StandIn] = weakref.WeakSet()


def venv_script(name: str) -> str:
    """The path of a console script installed in the running interpreter's venv."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in {Path(sys.executable).parent}; {INSTALL_HINT}")
    return found


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def started_stand_ins() -> list[StandIn]:
    """Every stand-in started in this process and not stopped yet."""
    return [service for service in list(_started) if service.running]


@atexit.register
def _stop_leftovers() -> None:
    """Last resort when a session ends without running its finalizers (e.g. KeyboardInterrupt)."""
    for service in started_stand_ins():
        with contextlib.suppress(Exception):
            service.stop()


@dataclass(eq=False)
class StandIn:
    """Base class: a stand-in process, its work directory, port and log file.

    Subclasses set :attr:`name`, build the command line in :meth:`command` and say how to tell
    the service is ready in :meth:`wait_ready`. A start that fails because the process exited
    early (typically a port taken by someone else between ``free_port()`` and the bind) is
    retried on a new port.
    """

    name: ClassVar[str] = "stand-in"
    start_attempts: ClassVar[int] = 3

    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="batchpred-standin-")))
    port: int = field(default_factory=free_port)
    startup_timeout: float = 60.0
    service: ServiceProcess | None = field(default=None, init=False, repr=False)
    startup_seconds: float | None = field(default=None, init=False)

    @property
    def log_file(self) -> Path:
        return self.work_dir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return (
            self.service is not None
            and self.service.process is not None
            and (self.service.process.poll() is None)
        )

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        """The child's environment (the parent's, without anything that could redirect it)."""
        env = dict(os.environ)
        for key in ("STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "PYTHONPATH"):
            env.pop(key, None)
        return env

    def wait_ready(self) -> None:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work done once before the first launch (directories, ``initdb``)."""
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def after_start(self) -> None:
        """Work done once the service answers (users, databases)."""

    def start(self) -> StandIn:
        """Start the stand-in and wait until it answers; returns ``self``."""
        if self.running:
            return self
        self.prepare()
        began = time.monotonic()
        for attempt in range(1, self.start_attempts + 1):
            self._launch()
            _started.add(self)
            try:
                self.wait_ready()
                break
            except Exception:
                exited = not self.running
                self.kill()
                if not exited or attempt == self.start_attempts:
                    raise
                log.warning("%s exited during start on port %s; retrying on a new port", self.name, self.port)
                self._new_ports()
        self.after_start()
        self.startup_seconds = time.monotonic() - began
        log.info("%s ready on %s:%s in %.2fs", self.name, LOOPBACK, self.port, self.startup_seconds)
        return self

    def _launch(self) -> None:
        self.service = ServiceProcess(self.command(), self.log_file, env=self.environment()).start()

    def _new_ports(self) -> None:
        self.port = free_port()

    def _wait_http(self, url: str) -> None:
        process = self.service.process if self.service else None
        wait_for_http(url, timeout=self.startup_timeout, process=process, log_file=self.log_file)

    def stop(self) -> None:
        """Stop the process group (SIGTERM, then SIGKILL after 10 s)."""
        if self.service is not None:
            self.service.stop()

    def kill(self) -> None:
        if self.service is not None:
            self.service.kill()

    def cleanup(self) -> None:
        """Stop, then remove the work directory."""
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------------------------------
# Object storage
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class MotoS3(StandIn):
    """Amazon S3 by ``moto_server`` (moto's server mode, speaks the S3 REST protocol)."""

    name: ClassVar[str] = "moto-s3"

    region: str = "us-east-1"
    access_key_id: str = "testing-key-id"
    secret_access_key: str = "testing-secret-key"

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def command(self) -> Sequence[str]:
        return [venv_script("moto_server"), "-H", LOOPBACK, "-p", str(self.port)]

    def wait_ready(self) -> None:
        self._wait_http(f"{self.endpoint_url}/moto-api/")

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def create_bucket(self, bucket: str) -> str:
        """Create ``bucket`` (in :attr:`region`) and return its name."""
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(**kwargs)
        return bucket

    def airflow_connection(self) -> dict[str, Any]:
        """An ``aws`` connection: keys in login/password, ``endpoint_url`` and ``region_name`` in extra."""
        return {
            "conn_type": "aws",
            "login": self.access_key_id,
            "password": self.secret_access_key,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }


#: The well-known key of Azurite's ``devstoreaccount1`` (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(eq=False)
class AzuriteBlob(StandIn):
    """Azure Blob Storage by Azurite's blob service (npm ``azurite``, installed in ``.services/node``)."""

    name: ClassVar[str] = "azurite-blob"

    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def blob_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account_name};"
            f"AccountKey={self.account_key};BlobEndpoint={self.blob_endpoint};"
        )

    def command(self) -> Sequence[str]:
        binary = SERVICES_DIR / "node" / "node_modules" / ".bin" / "azurite-blob"
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing; {INSTALL_HINT}")
        return [
            str(binary),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(self.port),
            "--location",
            str(self.work_dir / "data"),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
            "--disableTelemetry",
        ]

    def prepare(self) -> None:
        super().prepare()
        (self.work_dir / "data").mkdir(exist_ok=True)

    def wait_ready(self) -> None:
        # Unauthenticated requests get 403 from a ready Azurite: any answer below 500 will do.
        self._wait_http(f"{self.blob_endpoint}?comp=list")

    def client(self) -> Any:
        """An ``azure.storage.blob.BlobServiceClient`` for this account."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, container: str) -> str:
        """Create ``container`` and return its name."""
        self.client().create_container(container)
        return container

    def airflow_connection(self) -> dict[str, Any]:
        """A ``wasb`` connection whose extra holds the ``connection_string``."""
        return {
            "conn_type": "wasb",
            "login": self.account_name,
            "extra": {"connection_string": self.connection_string},
        }


@dataclass(eq=False)
class GCSEmulator(StandIn):
    """Google Cloud Storage by ``gcp-storage-emulator`` (JSON API and uploads, in memory)."""

    name: ClassVar[str] = "gcs-emulator"

    project: str = GCP_PROJECT

    @property
    def endpoint(self) -> str:
        """The value for ``STORAGE_EMULATOR_HOST`` (scheme, host and port)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def environ(self) -> dict[str, str]:
        """Environment variables that point Google's storage clients at this emulator."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def command(self) -> Sequence[str]:
        return [
            venv_script("gcp-storage-emulator"),
            "start",
            f"--host={LOOPBACK}",
            f"--port={self.port}",
            "--in-memory",
        ]

    def wait_ready(self) -> None:
        self._wait_http(f"{self.endpoint}/storage/v1/b?project={self.project}")

    def client(self) -> Any:
        """A ``google.cloud.storage.Client`` with anonymous credentials aimed at the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.endpoint},
        )

    def create_bucket(self, bucket: str) -> str:
        """Create ``bucket`` and return its name."""
        self.client().create_bucket(bucket)
        return bucket

    def airflow_connection(self) -> dict[str, Any]:
        """An anonymous ``google_cloud_platform`` connection (the endpoint comes from the environment)."""
        return gcp_airflow_connection(self.project)


def gcp_airflow_connection(project: str = GCP_PROJECT) -> dict[str, Any]:
    """An anonymous ``google_cloud_platform`` connection for ``project``.

    The Google hooks reach the emulators through ``STORAGE_EMULATOR_HOST`` and
    ``BIGQUERY_EMULATOR_HOST``; the connection itself names no endpoint.
    """
    return {
        "conn_type": "google_cloud_platform",
        "extra": {"project": project, "is_anonymous": True},
    }


# --------------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` (Debian layout)."""
    candidates = sorted(
        (path for path in Path("/usr/lib/postgresql").glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise FileNotFoundError(f"no PostgreSQL server binaries under /usr/lib/postgresql; {INSTALL_HINT}")
    return candidates[-1]


@dataclass(eq=False)
class PostgresServer(StandIn):
    """A real PostgreSQL server (the OS packages' binaries) run as the ``postgres`` system user.

    ``initdb`` and ``postgres`` refuse to run as root, so both run through ``runuser -u postgres``
    (when the tests run as another user, they run as that user directly). The cluster lives in
    its own directory under the system temp dir (pytest's temp dirs are private to root), TCP only
    on 127.0.0.1, the socket in the cluster directory. Password authentication (scram) over TCP;
    the ``postgres`` superuser is trusted on the socket only.
    """

    name: ClassVar[str] = "postgres"

    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="batchpred-pg-")))
    user: str = "batchpred"
    password: str = "batchpred-secret"
    dbname: str = "batchpred"
    host: str = LOOPBACK
    _pg_ctl_output: str = field(default="", init=False, repr=False)
    _pg_ctl_returncode: int | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.work_dir / "socket"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    @property
    def jdbc_url(self) -> str:
        """The JDBC URL of :attr:`dbname` (user and password go separately, as a credential)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.dbname}"

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg2.connect`` / ``psycopg.connect``."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
        }

    def _as_postgres(self, *args: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        result = subprocess.run(
            self._as_postgres(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{tail(self.log_file)}"
            )

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.work_dir, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                str(postgres_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            )

    def command(self) -> Sequence[str]:
        options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        return self._as_postgres(
            str(postgres_bin_dir() / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            str(int(self.startup_timeout)),
            "start",
        )

    def _launch(self) -> None:
        # pg_ctl starts the postmaster in a session of its own and returns once it accepts
        # connections (-w); the postmaster is then found through postmaster.pid.
        result = subprocess.run(
            list(self.command()),
            capture_output=True,
            text=True,
            timeout=self.startup_timeout + 10,
            check=False,
        )
        self._pg_ctl_output = f"{result.stdout}\n{result.stderr}"
        self._pg_ctl_returncode = result.returncode

    @property
    def postmaster_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.postmaster_pid
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def wait_ready(self) -> None:
        if self._pg_ctl_returncode != 0:
            raise RuntimeError(
                f"pg_ctl start failed ({self._pg_ctl_returncode}):\n{self._pg_ctl_output}\n"
                f"{tail(self.log_file)}"
            )

    def superuser_connection(self, dbname: str = "postgres") -> Any:
        """A psycopg2 connection as the ``postgres`` superuser over the Unix socket (autocommit)."""
        import psycopg2

        connection = psycopg2.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname
        )
        connection.autocommit = True
        return connection

    def after_start(self) -> None:
        from psycopg2 import sql

        connection = self.superuser_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.user,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD %s").format(
                            sql.Identifier(self.user)
                        ),
                        (self.password,),
                    )
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
                if cursor.fetchone() is None:
                    cursor.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(self.dbname), sql.Identifier(self.user)
                        )
                    )
        finally:
            connection.close()

    def connect(self) -> Any:
        """A psycopg2 connection as :attr:`user` over TCP, with the password."""
        import psycopg2

        return psycopg2.connect(**self.connect_kwargs)

    def create_database(self, dbname: str) -> str:
        """Create another database owned by :attr:`user` and return its name."""
        from psycopg2 import sql

        connection = self.superuser_connection()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(dbname), sql.Identifier(self.user)
                    )
                )
        finally:
            connection.close()
        return dbname

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; if that fails, SIGKILL the postmaster's process group."""
        if not self.running:
            return
        result = subprocess.run(
            self._as_postgres(
                str(postgres_bin_dir() / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                "30",
                "stop",
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0 and self.running:
            log.warning(
                "pg_ctl stop failed (%s), killing the postmaster: %s", result.returncode, result.stderr
            )
            self.kill()

    def kill(self) -> None:
        pid = self.postmaster_pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)

    def airflow_connection(self) -> dict[str, Any]:
        """A ``postgres`` connection (host, port, login, password; the database in ``schema``)."""
        return {
            "conn_type": "postgres",
            "host": self.host,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "schema": self.dbname,
        }


@dataclass(eq=False)
class FakesnowServer(StandIn):
    """Snowflake by ``fakesnow -s`` (DuckDB behind Snowflake's HTTP protocol), databases in memory.

    The Snowflake connector reaches it only with ``host``, ``port`` and ``protocol="http"`` in its
    connect arguments (:attr:`connect_args`). Airflow's ``SnowflakeHook`` builds its connect
    arguments itself and passes no host, port or protocol, so it cannot reach this server; use
    ``fakesnow.patch()`` in process for hook-level tests (see ``docs/stand-ins.md``).
    """

    name: ClassVar[str] = "fakesnow"

    account: str = "fakesnow"
    user: str = "fake"
    password: str = "snow"
    database: str = "BATCHPRED"
    schema: str = "PUBLIC"
    warehouse: str = "COMPUTE_WH"
    role: str = "SYSADMIN"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect``."""
        return {
            "account": self.account,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "schema": self.schema,
            "warehouse": self.warehouse,
            "host": LOOPBACK,
            "port": self.port,
            "protocol": "http",
            "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            "login_timeout": 30,
            "network_timeout": 60,
        }

    def command(self) -> Sequence[str]:
        return [venv_script("fakesnow"), "-s", "--host", LOOPBACK, "-p", str(self.port)]

    def wait_ready(self) -> None:
        # The root path answers 404 once uvicorn listens.
        self._wait_http(f"{self.url}/")

    def connect(self, **overrides: Any) -> Any:
        """A ``snowflake.connector`` connection to this server."""
        import snowflake.connector

        return snowflake.connector.connect(**{**self.connect_args, **overrides})

    def airflow_connection(self) -> dict[str, Any]:
        """A ``snowflake`` connection; ``host``/``port`` and extra ``protocol`` locate the server.

        ``SnowflakeHook`` itself ignores host, port and protocol (see the class docstring); code
        that maps this connection to a connector call must carry them over.
        """
        return {
            "conn_type": "snowflake",
            "host": LOOPBACK,
            "port": self.port,
            "login": self.user,
            "password": self.password,
            "schema": self.schema,
            "extra": {
                "account": self.account,
                "database": self.database,
                "warehouse": self.warehouse,
                "role": self.role,
                "protocol": "http",
                "insecure_mode": True,
                "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            },
        }


@dataclass(eq=False)
class BigQueryEmulator(StandIn):
    """BigQuery by ``bqemulator`` (REST + gRPC over DuckDB), from its own venv, in memory.

    Launched through ``dev/services/bqemulator_offline.py``, which makes the DuckDB ``spatial``
    and ``avro`` extensions local-only (they cannot be downloaded here): GEOGRAPHY and Avro are
    unsupported, everything else is upstream behaviour.
    """

    name: ClassVar[str] = "bqemulator"

    project: str = GCP_PROJECT
    grpc_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        while self.grpc_port == self.port:
            self.grpc_port = free_port()

    @property
    def endpoint(self) -> str:
        """The value for ``BIGQUERY_EMULATOR_HOST`` (scheme, host and port of the REST API)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def grpc_endpoint(self) -> str:
        """``host:port`` of the Storage Read/Write gRPC API."""
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def environ(self) -> dict[str, str]:
        """Environment variables that point Google's BigQuery clients at this emulator."""
        return {"BIGQUERY_EMULATOR_HOST": self.endpoint}

    def _new_ports(self) -> None:
        super()._new_ports()
        self.grpc_port = free_port()
        self.__post_init__()

    def command(self) -> Sequence[str]:
        python = SERVICES_DIR / "bqemulator-venv" / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(f"{python} is missing; {INSTALL_HINT}")
        return [
            str(python),
            str(REPO_ROOT / "dev" / "services" / "bqemulator_offline.py"),
            "start",
            "--rest-host",
            LOOPBACK,
            "--rest-port",
            str(self.port),
            "--grpc-host",
            LOOPBACK,
            "--grpc-port",
            str(self.grpc_port),
            "--project",
            self.project,
            "--ephemeral",
            "--log-level",
            "warning",
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # Its own venv, not the test venv; no .bqemu.toml from the working directory.
        env.pop("VIRTUAL_ENV", None)
        env["BQEMU_DATA_DIR"] = str(self.work_dir / "data")
        return env

    def wait_ready(self) -> None:
        self._wait_http(f"{self.endpoint}/healthz")

    def client(self) -> Any:
        """A ``google.cloud.bigquery.Client`` with anonymous credentials aimed at the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.endpoint},
        )

    def create_dataset(self, dataset: str) -> str:
        """Create ``dataset`` in :attr:`project` and return its id."""
        self.client().create_dataset(dataset)
        return dataset

    def airflow_connection(self) -> dict[str, Any]:
        """An anonymous ``google_cloud_platform`` connection (the endpoint comes from the environment)."""
        return gcp_airflow_connection(self.project)

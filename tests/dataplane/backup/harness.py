"""Real processes for the backup tests: PostgreSQL 15 servers, an S3-compatible object store over
TLS, and the backup scripts of images/postgres/scripts run as they run in a pod.

* PostgreSQL: Debian's postgresql-15, one server per data directory on a free loopback port, WAL
  archived with the command the pgc_pgbackrest_archive_command filter renders.
* The object store: moto's S3 server on plain HTTP behind nginx, which terminates TLS with a
  certificate of a CA made for the run (openssl); pgBackRest and pgc-repo.py trust that CA through
  repo1-storage-ca-file, as a pod trusts a private CA mounted from caSecretName.
* Google Cloud Storage and Azure Blob Storage: fake-gcs-server and Azurite (its blob service, the
  well-known development account, path-style URIs), each serving HTTPS itself with a certificate of
  the run's CA; hack/backup-stores.sh installs both into the project's cache.
* The scripts are copied into the work directory (as the image copies them to /usr/local/bin) and
  run with the environment a pod or Job sets: PGBACKREST_STANZA, PGBACKREST_CONFIG, the secrets,
  libpq's PGHOST/PGPORT/PGUSER; pgbackrest.conf comes from the pgc_pgbackrest_config filter.

When the tests run as root, PostgreSQL, pgBackRest and the scripts run as the ``postgres`` user.
Every process started here carries the data-plane marker in its environment, so that the sweeper
of tests/dataplane/harness.py removes what a killed run left behind. Everything needed is installed
by hack/test-deps.sh.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.dataplane.harness import (LOOPBACK, MARKER, OWNER, PG_BIN_DIR, REPO, RUN_AS, _alive, _kill, free_ports,
                                     hack, venv_bin, wait_for)

SCRIPTS = REPO / "images" / "postgres" / "scripts"
DEPS_HINT = "run `hack/test-deps.sh` as root to install it"
NGINX = "/usr/sbin/nginx"
CIPHER_PASS = "correct horse battery staple, for the tests only"
S3_KEY = "pgc-test-access-key"
S3_KEY_SECRET = "pgc-test-secret-key"
S3_ENDPOINT_NAME = "localhost"
S3_REGION = "us-east-1"
# Azurite's development account and its published key (not a secret anywhere).
AZURE_ACCOUNT = "devstoreaccount1"
AZURE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# fake-gcs-server checks no credentials: pgBackRest sends this as a bearer token (key type token).
GCS_TOKEN = "pgc-test-gcs-token"
STORES_HINT = "run `hack/backup-stores.sh` (test-deps.sh runs it) to install it"


def azurite_bin() -> Path:
    return Path(hack("PGC_CACHE")) / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def fake_gcs_bin() -> Path:
    return Path(hack("PGC_BIN")) / "fake-gcs-server"


def pg16_bin() -> Path:
    """PostgreSQL 16's bin directory, the target of the major-upgrade tests; fails (never skips) when
    hack/test-deps.sh did not install it."""
    bin_dir = Path(hack("PGC_PG16_BIN"))
    for b in ("postgres", "initdb", "pg_ctl", "pg_upgrade", "pg_controldata", "pg_amcheck", "vacuumdb"):
        if not os.access(bin_dir / b, os.X_OK):
            raise BackupHarnessError(f"PostgreSQL 16 is missing ({bin_dir / b}) -- {DEPS_HINT}")
    return bin_dir


class BackupHarnessError(RuntimeError):
    pass


def missing_dependencies() -> list[str]:
    """What the backup tests need and this machine lacks, one entry per missing piece."""
    problems = []
    for b in ("postgres", "initdb", "pg_ctl", "pg_basebackup", "pg_dump", "pg_restore", "psql", "pgbench",
              "pg_amcheck", "pg_controldata"):
        if not os.access(PG_BIN_DIR / b, os.X_OK):
            problems.append(f"PostgreSQL 15 ({PG_BIN_DIR / b})")
            break
    if not shutil.which("pgbackrest"):
        problems.append("pgBackRest (the pgbackrest command; Debian package pgbackrest)")
    if not os.access(NGINX, os.X_OK):
        problems.append(f"nginx ({NGINX}; Debian package nginx-light)")
    if not shutil.which("openssl"):
        problems.append("openssl")
    if not os.access(venv_bin("moto_server"), os.X_OK):
        problems.append(f"moto's S3 server ({venv_bin('moto_server')}: moto[server] from requirements-dev.txt)")
    if not os.access(azurite_bin(), os.X_OK):
        problems.append(f"Azurite ({azurite_bin()}; {STORES_HINT})")
    elif not shutil.which("node"):
        problems.append("node, which runs Azurite (Debian package nodejs)")
    if not os.access(fake_gcs_bin(), os.X_OK):
        problems.append(f"fake-gcs-server ({fake_gcs_bin()}; {STORES_HINT})")
    try:
        import boto3  # noqa: F401  (comes with moto)
        import psycopg  # noqa: F401
    except ImportError as e:
        problems.append(f"the Python module {e.name} in the project virtualenv")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            problems.append(f"the system user {RUN_AS!r} (it comes with postgresql-common)")
    return problems


def check_prerequisites() -> None:
    problems = missing_dependencies()
    if problems:
        raise BackupHarnessError("missing for the backup data-plane tests: " + "; ".join(problems)
                                 + f" -- {DEPS_HINT}")


def _owner():
    return pwd.getpwnam(RUN_AS) if os.geteuid() == 0 else None


def _as_owner_kwargs() -> dict:
    pw = _owner()
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []} if pw else {}


def give(path: Path) -> None:
    """Hand a tree to the user that runs PostgreSQL and the scripts."""
    pw = _owner()
    if not pw:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)


class Workspace:
    """A temporary directory for one run (named so that the data-plane sweeper recognises it), the
    processes started in it, and the environment they share."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pgc-dp-backup-"))
        os.chmod(self.dir, 0o700)
        self.bin = self.dir / "bin"
        self.bin.mkdir()
        for script in SCRIPTS.iterdir():
            if script.suffix in (".sh", ".py"):
                shutil.copy2(script, self.bin / script.name)
                os.chmod(self.bin / script.name, 0o755)
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir()
        self.procs: list[subprocess.Popen] = []
        self.servers: list["Postgres"] = []
        give(self.dir)

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        give(p)
        return p

    def base_env(self) -> dict[str, str]:
        return {
            "PATH": f"{PG_BIN_DIR}:{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.dir),
            "TMPDIR": str(self.tmp),
            MARKER: str(self.dir),
            OWNER: str(os.getpid()),
        }

    def spawn(self, cmd, log: Path, as_owner: bool = False, env: dict | None = None, cwd: Path | None = None):
        out = open(log, "ab")
        try:
            proc = subprocess.Popen([str(c) for c in cmd], env={**self.base_env(), **(env or {})},
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, cwd=cwd or self.dir,
                                    **(_as_owner_kwargs() if as_owner else {}))
        finally:
            out.close()
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop every server and process, kill -9 what is left, remove the directory."""
        for server in list(self.servers):
            with contextlib.suppress(Exception):
                server.stop()
        for proc in self.procs:
            if proc.poll() is None:
                _kill([proc.pid], signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill([proc.pid])
        self.sweep()
        if not os.environ.get("PGC_DATAPLANE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def sweep(self) -> None:
        import psutil
        mine = []
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get(MARKER) == str(self.dir):
                    mine.append(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
        _kill(mine)
        wait_for(lambda: not any(_alive(pid) for pid in mine), 10, "processes of the backup tests did not die")


# --- the object stores ----------------------------------------------------------------------------

def _openssl(cwd: Path, *args: str) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BackupHarnessError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_certificates(d: Path) -> None:
    """ca.crt (a CA of the run) and server.crt/server.key (signed by it, for localhost) in ``d``."""
    _openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pgc test CA",
             "-keyout", "ca.key", "-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={S3_ENDPOINT_NAME}",
             "-keyout", "server.key", "-out", "server.csr")
    # pgBackRest checks the name it connects to (repo1-storage-host when set) against the common
    # name and the DNS names only: the loopback address is listed as a DNS name as well.
    (d / "server.ext").write_text(f"subjectAltName=DNS:{S3_ENDPOINT_NAME},DNS:{LOOPBACK},IP:{LOOPBACK}\n"
                                  "extendedKeyUsage=serverAuth\n")
    _openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "server.ext", "-out", "server.crt")
    give(d)


class ObjectStore:
    """moto's S3 server behind nginx (TLS), on loopback, with a CA of its own."""

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.dir = ws.path("s3")
        self.moto_port, self.port = free_ports(2)
        self.ca_file = self.dir / "ca.crt"

    def make_certificates(self) -> None:
        make_certificates(self.dir)

    def nginx_conf(self) -> str:
        d = self.dir
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 2;
# Workers keep the run's marker, so that a sweep after a killed run finds them too.
env {MARKER};
env {OWNER};
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    server {{
        listen {LOOPBACK}:{self.port} ssl;
        server_name {S3_ENDPOINT_NAME};
        ssl_certificate {d}/server.crt;
        ssl_certificate_key {d}/server.key;
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        proxy_http_version 1.1;
        proxy_read_timeout 300s;
        location / {{
            proxy_pass http://{LOOPBACK}:{self.moto_port};
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""

    def start(self) -> None:
        self.make_certificates()
        self.moto = self.ws.spawn([venv_bin("moto_server"), "-H", LOOPBACK, "-p", str(self.moto_port)],
                                  self.dir / "moto.log")
        conf = self.dir / "nginx.conf"
        conf.write_text(self.nginx_conf())
        self.nginx = self.ws.spawn([NGINX, "-e", self.dir / "nginx-error.log", "-c", conf, "-p", self.dir,
                                    "-g", "daemon off;"], self.dir / "nginx.log")
        wait_for(lambda: self._answers(), 30,
                 f"the S3 server did not answer over TLS on {LOOPBACK}:{self.port}\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for name in ("moto.log", "nginx.log", "nginx-error.log"):
            with contextlib.suppress(OSError):
                out.append(f"--- {name}\n" + (self.dir / name).read_text(errors="replace")[-2000:])
        return "\n".join(out)

    def _answers(self) -> bool:
        for proc in (self.moto, self.nginx):
            if proc.poll() is not None:
                raise BackupHarnessError(f"{proc.args[0]} exited with {proc.returncode}\n{self.logs()}")
        self.client().list_buckets()
        return True

    @property
    def url(self) -> str:
        return f"https://{S3_ENDPOINT_NAME}:{self.port}"

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.url, region_name=S3_REGION, aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_KEY_SECRET, verify=str(self.ca_file),
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}))

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under prefix, with its content."""
        s3 = self.client()
        out = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                out[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out

    def backup_spec(self, bucket: str, path: str) -> dict:
        """spec.backup of a cluster whose repository is this store."""
        return {"repository": {"s3": {"endpoint": f"{S3_ENDPOINT_NAME}:{self.port}", "bucket": bucket,
                                      "region": S3_REGION, "path": path, "uriStyle": "path",
                                      "verifyTLS": True, "caSecretName": "backup-ca",
                                      "secretName": "backup-s3"}}}


class _Emulator:
    """An object-store emulator that serves HTTPS itself, with a certificate of a CA of its own."""

    log_name = ""

    def __init__(self, ws: Workspace, name: str):
        self.ws = ws
        self.dir = ws.path(name)
        self.port = free_ports(1)[0]
        self.ca_file = self.dir / "ca.crt"
        self.proc = None

    def command(self) -> list:
        raise NotImplementedError

    def ping(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        make_certificates(self.dir)
        self.proc = self.ws.spawn(self.command(), self.dir / self.log_name)

        def answers():
            if self.proc.poll() is not None:
                raise BackupHarnessError(f"{self.proc.args[0]} exited with {self.proc.returncode}\n{self.logs()}")
            self.ping()
            return True
        wait_for(answers, 60, f"{self.log_name} did not answer over TLS on {LOOPBACK}:{self.port}\n{self.logs()}")

    def logs(self) -> str:
        with contextlib.suppress(OSError):
            return f"--- {self.log_name}\n" + (self.dir / self.log_name).read_text(errors="replace")[-3000:]
        return ""

    def _request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        import ssl
        conn = http.client.HTTPSConnection(LOOPBACK, self.port, timeout=30,
                                           context=ssl.create_default_context(cafile=str(self.ca_file)))
        try:
            conn.request(method, path, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise BackupHarnessError(f"{method} {path}: {resp.status} {data[:500]!r}")
        return data


class GcsStore(_Emulator):
    """fake-gcs-server (in memory, HTTPS). It checks no credentials: pgBackRest sends a token
    (repo1-gcs-key-type=token), or one it got from GcsTokenEndpoint with a service-account key."""

    log_name = "fake-gcs-server.log"

    def __init__(self, ws: Workspace):
        super().__init__(ws, "gcs")

    def command(self) -> list:
        url = f"https://{S3_ENDPOINT_NAME}:{self.port}"
        return [fake_gcs_bin(), "-backend", "memory", "-scheme", "https", "-host", LOOPBACK, "-port", self.port,
                "-cert-location", self.dir / "server.crt", "-private-key-location", self.dir / "server.key",
                # The Location of resumable uploads, which pgBackRest follows.
                "-external-url", url, "-public-host", f"{S3_ENDPOINT_NAME}:{self.port}", "-log-level", "warn"]

    def ping(self) -> None:
        self._request("GET", "/storage/v1/b")

    def create_bucket(self, bucket: str) -> None:
        self._request("POST", "/storage/v1/b", json.dumps({"name": bucket}).encode(),
                      {"Content-Type": "application/json"})

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        out, token = {}, ""
        while True:
            query = urllib.parse.urlencode({"prefix": prefix, **({"pageToken": token} if token else {})})
            page = json.loads(self._request("GET", f"/storage/v1/b/{bucket}/o?{query}"))
            for item in page.get("items", []):
                name = urllib.parse.quote(item["name"], safe="")
                out[item["name"]] = self._request("GET", f"/storage/v1/b/{bucket}/o/{name}?alt=media")
            token = page.get("nextPageToken")
            if not token:
                return out

    def backup_spec(self, bucket: str, path: str, key_type: str = "token") -> dict:
        return {"repository": {"gcs": {"endpoint": f"{S3_ENDPOINT_NAME}:{self.port}", "bucket": bucket, "path": path,
                                       "keyType": key_type, "verifyTLS": True, "caSecretName": "backup-ca",
                                       "secretName": "backup-gcs"}}}


class GcsTokenEndpoint:
    """Google's OAuth token endpoint as a service-account key's ``token_uri`` names it: it checks
    the JWT bearer assertion (RS256, signed with the key's private key; issuer, audience and scope)
    and answers with an access token, served over HTTPS with the emulator's certificate."""

    # pgBackRest asks for read_only to read and read_write to write.
    SCOPES = {"https://www.googleapis.com/auth/devstorage.read_only",
              "https://www.googleapis.com/auth/devstorage.read_write"}

    def __init__(self, store: GcsStore, client_email: str = "pgbackrest@pgc-test.iam.gserviceaccount.com"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        self.store = store
        self.client_email = client_email
        self.port = free_ports(1)[0]
        self.url = f"https://{S3_ENDPOINT_NAME}:{self.port}/token"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()).decode()
        self.issued: list[dict] = []    # the claims of each accepted assertion
        self.refused: list[str] = []    # why each other request was refused
        self._server = None

    def key_json(self) -> str:
        """The service-account key file, as the Google Cloud console gives it."""
        return json.dumps({"type": "service_account", "project_id": "pgc-test", "private_key_id": "0" * 40,
                           "private_key": self.private_key_pem, "client_email": self.client_email,
                           "client_id": "1" * 21, "token_uri": self.url})

    def _check(self, body: str) -> dict:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        form = urllib.parse.parse_qs(body)
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            raise ValueError(f"grant_type {form.get('grant_type')}")
        header, claims, signature = form["assertion"][0].split(".")

        def decode(part):
            return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        if json.loads(decode(header)).get("alg") != "RS256":
            raise ValueError(f"header {decode(header)!r}")
        self._key.public_key().verify(decode(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                                      hashes.SHA256())
        claims = json.loads(decode(claims))
        if claims.get("iss") != self.client_email or claims.get("aud") != self.url:
            raise ValueError(f"issuer or audience: {claims}")
        if not self.SCOPES & set(claims.get("scope", "").split()):
            raise ValueError(f"scope {claims.get('scope')!r}")
        if not claims.get("iat", 0) <= time.time() + 60 < claims.get("exp", 0) + 60:
            raise ValueError(f"times {claims}")
        return claims

    def start(self) -> None:
        import http.server
        import ssl
        import threading
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                try:
                    endpoint.issued.append(endpoint._check(body))
                    status, answer = 200, {"access_token": f"pgc-test-access-{len(endpoint.issued)}",
                                           "token_type": "Bearer", "expires_in": 3600}
                except Exception as exc:  # every refusal is recorded for the test's message
                    endpoint.refused.append(f"{type(exc).__name__}: {exc}")
                    status, answer = 400, {"error": "invalid_grant"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.store.dir / "server.crt", self.store.dir / "server.key")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


class AzureStore(_Emulator):
    """Azurite's blob service (HTTPS), its development account, path-style URIs
    (https://localhost:port/devstoreaccount1/container/blob), requests signed with the shared key."""

    log_name = "azurite.log"
    API_VERSION = "2021-06-08"

    def __init__(self, ws: Workspace):
        super().__init__(ws, "azure")

    def command(self) -> list:
        return [azurite_bin(), "--blobHost", LOOPBACK, "--blobPort", self.port, "--location", self.ws.path("azure", "data"),
                "--cert", self.dir / "server.crt", "--key", self.dir / "server.key",
                # The account is the first segment of the path, whatever the host is called.
                "--disableProductStyleUrl", "--skipApiVersionCheck", "--disableTelemetry", "--silent"]

    def ping(self) -> None:
        self._signed("GET", "", {"comp": "list"})

    def _signed(self, method: str, path: str, query: dict, body: bytes = b"") -> bytes:
        """A request to /<account><path>, with Azure's Shared Key authorization."""
        resource = f"/{AZURE_ACCOUNT}{path}"
        headers = {"x-ms-date": email.utils.formatdate(usegmt=True), "x-ms-version": self.API_VERSION}
        canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        canonical += f"/{AZURE_ACCOUNT}{resource}" + "".join(f"\n{k}:{v}" for k, v in sorted(query.items()))
        length = str(len(body)) if body else ""
        to_sign = "\n".join([method, "", "", length, "", "", "", "", "", "", "", ""]) + "\n" + canonical
        digest = hmac.new(base64.b64decode(AZURE_KEY), to_sign.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {AZURE_ACCOUNT}:{base64.b64encode(digest).decode()}"
        if body or method == "PUT":
            headers["Content-Length"] = str(len(body))
        url = urllib.parse.quote(resource) + ("?" + urllib.parse.urlencode(query) if query else "")
        return self._request(method, url, body, headers)

    def create_container(self, container: str) -> None:
        self._signed("PUT", f"/{container}", {"restype": "container"})

    def objects(self, container: str, prefix: str = "") -> dict[str, bytes]:
        out, marker = {}, ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix, **({"marker": marker} if marker else {})}
            page = ET.fromstring(self._signed("GET", f"/{container}", query))
            for name in page.iter("Name"):
                out[name.text] = self._signed("GET", f"/{container}/{name.text}", {})
            marker = page.findtext("NextMarker")
            if not marker:
                return out

    def backup_spec(self, container: str, path: str) -> dict:
        return {"repository": {"azure": {"endpoint": f"{S3_ENDPOINT_NAME}:{self.port}", "account": AZURE_ACCOUNT,
                                         "container": container, "path": path, "uriStyle": "path",
                                         "verifyTLS": True, "caSecretName": "backup-ca",
                                         "secretName": "backup-azure"}}}


def merge_into(into: dict, extra: dict) -> dict:
    """Merge ``extra`` into a configuration, dictionaries key by key, as the operator merges what
    backups add to Patroni's configuration."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge_into(into[key], value)
        else:
            into[key] = value
    return into


# --- PostgreSQL -----------------------------------------------------------------------------------

def _pgc(name: str, backup: dict, retention: int | None = None) -> dict:
    from ansible_collections.postgres.cluster.plugins.filter.pgc import pgc_normalize
    spec = {"backup": backup}
    if retention:
        spec["backupRetention"] = retention
    return pgc_normalize({"metadata": {"name": name, "namespace": "dp"}, "spec": spec})


class Postgres:
    """One PostgreSQL server, 15 unless ``bin_dir`` says otherwise (trust over its own unix socket and
    loopback: tests only)."""

    def __init__(self, ws: Workspace, name: str, data_dir: Path | None = None, bin_dir: Path = PG_BIN_DIR):
        self.ws = ws
        self.name = name
        self.bin_dir = bin_dir
        self.dir = ws.path("pg", name)
        self.data_dir = data_dir or self.dir / "data"
        self.socket_dir = ws.path("pg", name, "run")
        self.port = free_ports(1)[0]
        self.log = self.dir / "postgres.log"
        self.proc = None

    def run(self, *cmd, check=True, input: str | None = None, timeout: float = 600, env: dict | None = None):
        proc = subprocess.run([str(c) for c in cmd], env={**self.ws.base_env(), **self.libpq_env(), **(env or {})},
                              capture_output=True, text=True, input=input, timeout=timeout, cwd=self.ws.dir,
                              **_as_owner_kwargs())
        if check and proc.returncode != 0:
            raise BackupHarnessError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def libpq_env(self) -> dict[str, str]:
        return {"PGHOST": str(self.socket_dir), "PGPORT": str(self.port), "PGUSER": "postgres",
                "PGDATABASE": "postgres"}

    def initdb(self) -> None:
        self.run(self.bin_dir / "initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust", "--data-checksums",
                 "-E", "UTF8", "--locale=C.UTF-8")

    def configure(self, **parameters) -> None:
        lines = [f"{k} = '{v}'" if isinstance(v, str) else f"{k} = {v}" for k, v in parameters.items()]
        with open(self.data_dir / "postgresql.auto.conf", "a") as f:
            f.write("\n".join(lines) + "\n")

    def start(self, timeout: float = 120, env: dict | None = None) -> None:
        """Start on this server's port and socket (over what the data directory's configuration says),
        with ``env`` as the environment of the postmaster (and so of archive and restore commands)."""
        opts = f"-c port={self.port} -c listen_addresses={LOOPBACK} -c unix_socket_directories={self.socket_dir}"
        self.run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-l", self.log, "-o", opts, "-w", "-t", str(int(timeout)),
                 "start", timeout=timeout + 10, env=env)
        if self not in self.ws.servers:
            self.ws.servers.append(self)

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            proc = self.run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "-t", "20", "stop",
                            check=False)
            if proc.returncode != 0 and (self.data_dir / "postmaster.pid").exists():
                self.run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "-t", "20", "stop",
                         check=False)
        if self in self.ws.servers:
            self.ws.servers.remove(self)

    def connect(self, dbname: str = "postgres"):
        import psycopg
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname,
                               autocommit=True)

    def sql(self, sql: str, params=None, dbname: str = "postgres"):
        with self.connect(dbname) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def value(self, sql: str, params=None, dbname: str = "postgres"):
        return self.sql(sql, params, dbname)[0][0]

    def in_recovery(self) -> bool:
        return self.value("SELECT pg_is_in_recovery()")

    def wait_promoted(self, timeout: float = 120) -> None:
        wait_for(lambda: not self.in_recovery(), timeout, f"{self.name} did not finish recovery\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""

    def switch_wal_and_wait_archived(self, timeout: float = 60) -> str:
        """Close the current WAL segment and wait until the archiver has stored it."""
        segment = self.value("SELECT pg_walfile_name(pg_switch_wal())")

        def archived():
            last, failed = self.sql("SELECT last_archived_wal, last_failed_wal FROM pg_stat_archiver")[0]
            return last is not None and last >= segment
        wait_for(archived, timeout, f"WAL segment {segment} of {self.name} was not archived\n{self.log_tail()}")
        return segment

    def table_digest(self, table: str, dbname: str = "postgres") -> tuple[int, str]:
        """Row count and an md5 over every row of a table, in key order."""
        return tuple(self.sql(f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                              f"FROM {table} t", dbname=dbname)[0])


def write_plaintext_marker(server, table: str) -> str:
    """A table whose rows all carry one random marker, stored uncompressed and checkpointed, so that a
    copy of the marker anywhere in a repository means it holds plain data; returns the marker."""
    marker = f"PGC-PLAINTEXT-MARKER-{uuid.uuid4().hex}"
    server.sql(f"CREATE TABLE {table} (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = off)")
    server.sql(f"ALTER TABLE {table} ALTER COLUMN v SET STORAGE PLAIN")
    server.sql(f"INSERT INTO {table} SELECT g, %s || ' ' || g FROM generate_series(1, 2000) g", (marker,))
    server.sql("CHECKPOINT")
    return marker


def utc_now(server) -> str:
    """The server's time, read in a later whole second than the call: pgBackRest keeps a backup's
    stop time in whole seconds, and a restore target must fall surely after the backups before it."""
    time.sleep(1.02 - time.time() % 1)
    return server.value("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")


class Cluster:
    """A source server with its pgBackRest stanza, and the scripts run against it."""

    def __init__(self, ws: Workspace, name: str, backup: dict, retention: int | None = None,
                 repo_path: Path | None = None, ca_file: Path | None = None, server: Postgres | None = None,
                 options: dict | None = None, gcs_key_file: Path | None = None):
        from ansible_collections.postgres.cluster.plugins.filter import backup as flt
        self.ws = ws
        self.name = name
        self.pgc = _pgc(name, backup, retention)
        self.settings = flt.pgc_pgbackrest_settings(self.pgc)
        self.server = server or Postgres(ws, name)
        self.config = ws.path("pg", name) / "pgbackrest.conf"
        self.repo_path = repo_path
        lock = ws.path("pg", name, "lock")
        text = flt.pgc_pgbackrest_config(
            self.pgc, role="local", pg_path=str(self.server.data_dir), socket_path=str(self.server.socket_dir),
            port=self.server.port, repo_path=str(repo_path or ""), ca_file=str(ca_file or ""),
            gcs_key_file=str(gcs_key_file or ""),
            options={"lock-path": str(lock),
                     # The endpoint keeps the name on the certificate; connections go to loopback.
                     "repo1-storage-host": LOOPBACK if self.settings["type"] in ("s3", "azure") else None,
                     **(options or {})})
        self.config.write_text(text)
        give(self.config)
        self.archive_command = flt.pgc_pgbackrest_archive_command(self.pgc, config=str(self.config))
        self.restore_command = flt.pgc_pgbackrest_restore_command(self.pgc, config=str(self.config))

    def env(self) -> dict[str, str]:
        e = {"PGBACKREST_STANZA": self.name, "PGBACKREST_CONFIG": str(self.config)}
        if self.settings["type"] == "s3":
            e.update({"PGBACKREST_REPO1_S3_KEY": S3_KEY, "PGBACKREST_REPO1_S3_KEY_SECRET": S3_KEY_SECRET})
        elif self.settings["type"] == "azure":
            e["PGBACKREST_REPO1_AZURE_KEY"] = AZURE_KEY
        elif self.settings["type"] == "gcs" and self.settings["gcs"]["keyType"] == "token":
            e["PGBACKREST_REPO1_GCS_KEY"] = GCS_TOKEN
        if self.settings["encryption"]:
            e["PGBACKREST_REPO1_CIPHER_PASS"] = CIPHER_PASS
        return e

    def init(self, archive: bool = True) -> Postgres:
        """initdb, WAL archived to the repository (unless ``archive`` is false), started."""
        self.server.initdb()
        self.server.configure(archive_mode="on" if archive else "off", archive_command=self.archive_command,
                              wal_level="replica", max_wal_size="1GB", checkpoint_timeout="15min")
        self.server.start(env=self.env())
        return self.server

    def script(self, name: str, *args: str, check: bool = True, timeout: float = 900,
               env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a script of images/postgres/scripts as a pod or Job would (the environment, the user)."""
        return self.server.run(self.ws.bin / name, *args, check=check, timeout=timeout, env={**self.env(), **(env or {})})

    def script_json(self, name: str, *args: str, env: dict | None = None) -> list[dict]:
        out = self.script(name, *args, env=env).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def pgbackrest(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.server.run("pgbackrest", *args, check=check, env=self.env())

    def info(self) -> dict:
        return json.loads(self.pgbackrest("info", "--output=json").stdout)[0]

    def restore(self, target: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.script("pgc-restore.sh", f"--datadir={target}", "--archive-mode=off", *args, check=check)

    def start_copy(self, name: str, data_dir: Path) -> Postgres:
        """Start a restored data directory as a server of its own, on its own port and socket."""
        copy = Postgres(self.ws, name, data_dir=data_dir)
        copy.start(env=self.env())
        return copy


# --- pgBackRest's TLS servers ---------------------------------------------------------------------

def write_tls(ws: Workspace, bundle: dict, name: str) -> Path:
    """A backup TLS Secret's keys (ca.crt, tls.crt, tls.key) as files, as a pod mounts them."""
    d = ws.path("tls", name)
    for key, text in bundle.items():
        (d / key).write_text(text)
        os.chmod(d / key, 0o600)
    give(d)
    return d


class TlsServer:
    """``pgbackrest server`` as a database pod's sidecar or a repository host runs it."""

    def __init__(self, ws: Workspace, name: str, config: Path, port: int, env: dict | None = None):
        self.ws = ws
        self.name = name
        self.config = config
        self.port = port
        self.env = env or {}
        self.log = ws.path("tls-servers") / f"{name}.log"
        self.proc = None

    def start(self) -> "TlsServer":
        import socket
        self.proc = self.ws.spawn(["pgbackrest", f"--config={self.config}", "server"], self.log, as_owner=True,
                                  env=self.env)

        def listening():
            if self.proc.poll() is not None:
                raise BackupHarnessError(f"pgbackrest server {self.name} exited with {self.proc.returncode}\n"
                                         + self.log.read_text(errors="replace")[-2000:])
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        wait_for(listening, 30, f"pgbackrest server {self.name} does not listen on {LOOPBACK}:{self.port}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            _kill([self.proc.pid], signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                _kill([self.proc.pid])  # nothing to lose: the workspace's sweep follows anyway

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        return ""


# --- restore drills -------------------------------------------------------------------------------

def drill_spec(check: str = "") -> dict:
    return {"repository": {"volume": {"size": "1Gi"}}, "drill": {"schedule": "0 4 * * 0", "check": check}}


def drill_environment(cluster: Cluster, check: str) -> dict[str, str]:
    """The plain variables of the rendered drill Job (the secrets come from cluster.env(), as the Job
    takes them from its Secrets), with this machine's paths where the pod has its mounts."""
    from ansible_collections.postgres.cluster.plugins.module_utils.jobs import pgc_backup_job_spec
    pgc = dict(cluster.pgc, spec={**cluster.pgc["spec"], "backup": drill_spec(check)})
    container = pgc_backup_job_spec(pgc, "drill")["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["PGC_DRILL_DIR"] and env["PGC_RESULT_FILE"] == "/dev/termination-log"
    assert ("PGC_DRILL_CHECK" in env) == bool(check)
    scratch = cluster.ws.path("drill-scratch", cluster.name)
    result = scratch.parent / f"{cluster.name}.result"
    result.write_text("")
    give(scratch.parent)
    env.update(PGBACKREST_CONFIG=str(cluster.config), PGC_DRILL_DIR=str(scratch), PGC_RESULT_FILE=str(result))
    return env


def run_drill(cluster: Cluster, check: str = "") -> tuple[int, dict, str]:
    """Run the drill; its exit code, the JSON line it left in its result file (the termination
    message) and its log."""
    env = drill_environment(cluster, check)
    proc = cluster.script("pgc-drill.sh", check=False, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"one JSON line on stdout:\n{proc.stdout}\n{proc.stderr}"
    written = open(env["PGC_RESULT_FILE"]).read()
    assert written.strip(), f"no result written:\n{proc.stderr}"
    result = json.loads(written)
    assert result == json.loads(lines[0])
    scratch = env["PGC_DRILL_DIR"]
    assert os.listdir(scratch) == [], f"the drill left {os.listdir(scratch)} behind"
    print(f"drill of {cluster.name}: {result['result']} in {result['duration_seconds']}s "
          f"(backup {result.get('backup')}){': ' + result['reason'] if 'reason' in result else ''}")
    return proc.returncode, result, proc.stderr

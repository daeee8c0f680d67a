"""Who gets in from outside a pod, on a real PostgreSQL 15 with the pg_hba, TLS settings and
certificates the operator renders and issues.

The server listens on this machine's own non-loopback address, as a member listens on its pod's
address: the loopback lines of pg_hba do not apply, as they do not to another pod. Patroni is not
needed for this (it writes the same pg_hba lines and parameters); the members' tests run it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# As the backup tests do: the unit tests' conftest makes the collection importable from this checkout.
import tests.unit.conftest  # noqa: F401
from ansible_collections.postgres.cluster.plugins.module_utils.patroni import (
    DEFAULT_TLS_PARAMETERS,
    TLS_PARAMETERS,
    pgc_pg_hba,
)
from ansible_collections.postgres.cluster.plugins.module_utils.spec import pgc_normalize
from ansible_collections.postgres.cluster.plugins.module_utils.tls import pgc_certificate_secrets, pgc_certificates
from tests.dataplane.harness import DEPS_HINT, PG_BIN_DIR, RUN_AS, wait_for
from tests.unit.plugins.module_utils.samples import cluster

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
RELOAD = REPO / "roles/provision/files/pgc-reload.py"
# The name clients check the certificate against (sslmode=verify-full): the read-write Service's.
SERVICE = "db.prod.svc"
PASSWORDS = {"postgres": "Su-p4ss", "app": "App-p4ss", "replicator": "Repl-p4ss"}


def outside_address() -> str:
    """This machine's first non-loopback IPv4 address."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            return address
    pytest.fail("this machine has no non-loopback IPv4 address to listen on, as a pod's", pytrace=False)


def run_as_postgres():
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(RUN_AS)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class Server:
    """One PostgreSQL with a cluster's certificates beside its data directory, as in a pod."""

    def __init__(self, pgc, files):
        self.pgc, self.files = pgc, files
        self.address = outside_address()
        with socket.socket() as s:
            s.bind((self.address, 0))
            self.port = s.getsockname()[1]
        self.dir = Path(tempfile.mkdtemp(prefix="pgc-dp-tls-"))
        self.data = self.dir / "pgdata"
        self.client = self.dir / "client"  # the clients' copies, owned by whoever runs psql
        self.proc = None

    def write(self, secret, subdir, owner_dir=None):
        directory = (owner_dir or self.dir) / subdir
        directory.mkdir(exist_ok=True)
        for key, text in self.files[secret].items():
            (directory / key).write_text(text)
            os.chmod(directory / key, 0o600)
        return directory

    def chown(self):
        if os.geteuid() != 0:
            return
        pw = pwd.getpwnam(RUN_AS)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        for root, dirs, names in os.walk(self.dir):
            if Path(root) == self.client or self.client in Path(root).parents:
                continue
            for name in dirs + names:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)

    def start(self):
        if not os.access(PG_BIN_DIR / "postgres", os.X_OK):
            pytest.fail(f"PostgreSQL 15 ({PG_BIN_DIR}) is missing -- {DEPS_HINT}", pytrace=False)
        names = self.pgc["names"]
        self.write(names["server_tls"], "tls")
        self.write(names["superuser_tls"], "superuser-tls")
        self.client.mkdir()
        self.write(names["superuser_tls"], "superuser", self.client)
        self.write(names["app_tls"], "app", self.client)
        (self.dir / "sock").mkdir()
        (self.dir / "pwfile").write_text(PASSWORDS["postgres"] + "\n")
        self.chown()
        subprocess.run([str(PG_BIN_DIR / "initdb"), "-D", str(self.data), "-U", "postgres", "--pwfile",
                        str(self.dir / "pwfile"), "--auth-local=trust", "--auth-host=scram-sha-256"],
                       check=True, capture_output=True, **run_as_postgres())
        settings = dict(DEFAULT_TLS_PARAMETERS, **TLS_PARAMETERS, listen_addresses=self.address, port=self.port,
                        unix_socket_directories=str(self.dir / "sock"), password_encryption="scram-sha-256")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines("%s = '%s'\n" % item for item in settings.items())
        self.hba(self.pgc)
        self.proc = subprocess.Popen([str(PG_BIN_DIR / "postgres"), "-D", str(self.data)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "server.log", "w"), start_new_session=True,
                                     **run_as_postgres())
        wait_for(lambda: self.local("select 1") == "1", 30, "PostgreSQL did not start:\n" + self.log())
        self.local("create role app login password '%s'; create role replicator login replication password '%s'"
                   % (PASSWORDS["app"], PASSWORDS["replicator"]))

    def log(self):
        path = self.dir / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def local(self, sql):
        proc = subprocess.run([str(PG_BIN_DIR / "psql"), "-h", str(self.dir / "sock"), "-p", str(self.port),
                               "-U", "postgres", "-d", "postgres", "-Atc", sql], capture_output=True, text=True,
                              **run_as_postgres())
        return proc.stdout.strip()

    def hba(self, pgc):
        """pg_hba as Patroni writes it for ``pgc``, then a reload."""
        (self.data / "pg_hba.conf").write_text("".join(line + "\n" for line in pgc_pg_hba(pgc)))
        if self.proc:
            os.kill(self.proc.pid, signal.SIGHUP)
            wait_for(lambda: self.local("select count(*) from pg_hba_file_rules") == str(len(pgc_pg_hba(pgc))),
                     10, "pg_hba was not reloaded")

    def connect(self, user, ssl_mode="verify-full", cert=None, password=True, extra=""):
        """Log in from outside as ``user``: (True, output) or (False, the error)."""
        conninfo = ("host=%s hostaddr=%s port=%d user=%s dbname=%s sslmode=%s sslrootcert=%s %s"
                    % (SERVICE, self.address, self.port, user, "replication" if "replication" in extra else "postgres",
                       ssl_mode, self.dir / "tls/ca.crt", extra))
        if cert:
            conninfo += " sslcert=%s sslkey=%s" % (self.client / cert / "tls.crt", self.client / cert / "tls.key")
        env = {"PATH": "/usr/bin:/bin"}
        if password:
            env["PGPASSWORD"] = PASSWORDS.get(user, "")
        sql = "IDENTIFY_SYSTEM" if "replication=true" in extra else "select current_user || ' ' || ssl::text " \
              "from pg_stat_ssl where pid = pg_backend_pid()"
        proc = subprocess.run([str(PG_BIN_DIR / "psql"), conninfo, "-w", "-Atc", sql], capture_output=True, text=True,
                              env=env, timeout=30)
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def served_serial(self):
        """The serial number of the certificate the server presents now."""
        from cryptography import x509
        with socket.create_connection((self.address, self.port), timeout=5) as raw:
            raw.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest
            assert raw.recv(1) == b"S"
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            with context.wrap_socket(raw) as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number

    def stop(self):
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def spec(**tls_and_credentials):
    return pgc_normalize(cluster(**tls_and_credentials))


def issued(pgc, secrets=None):
    """The operator's certificates of ``pgc`` as text, from pgc_certificates."""
    import base64
    names = [pgc["names"]["ca"]] + list(pgc_certificate_secrets(pgc))
    current = {name: (secrets or {}).get(name) for name in names}
    written = pgc_certificates(pgc, current)
    out = {name: {"metadata": {"annotations": w["annotations"]},
                  "data": {k: base64.b64encode(v.encode()).decode() for k, v in w["data"].items()}}
           for name, w in written.items()}
    return {**current, **out}


def text(secrets):
    import base64
    return {name: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
            for name, s in secrets.items() if s}


@pytest.fixture(scope="module")
def server():
    # The application role's certificate too, for the clientAuth cases.
    pgc = spec(tls={"clientAuth": "certificate"})
    secrets = issued(pgc)
    s = Server(pgc, text(secrets))
    s.secrets = secrets
    try:
        s.start()
        yield s
    finally:
        s.stop()


def test_by_default_the_superuser_needs_its_certificate_and_others_their_password_over_tls(server):
    server.hba(spec())
    assert server.connect("app") == (True, "app true")
    ok, error = server.connect("app", ssl_mode="disable")
    assert not ok and "no encryption" in error, "a client without TLS is refused"
    ok, error = server.connect("postgres")
    assert not ok and ("certificate authentication failed" in error
                       or "connection requires a valid client certificate" in error), error
    assert server.connect("postgres", cert="superuser", password=False) == (True, "postgres true")
    # The application role's certificate does not make it the superuser.
    ok, error = server.connect("postgres", cert="app", password=False)
    assert not ok and 'certificate authentication failed for user "postgres"' in error, error
    # Replicas stream over TLS with their role's password.
    ok, out = server.connect("replicator", extra="replication=true")
    assert ok and out.count("|") == 3, out
    # TLS 1.1 and older are refused.
    ok, error = server.connect("app", extra="ssl_max_protocol_version=TLSv1.1")
    assert not ok, error


def test_the_superuser_may_log_in_with_its_password_when_the_spec_says_so(server):
    server.hba(spec(credentials={"superuserRemoteLogin": "password"}))
    assert server.connect("postgres") == (True, "postgres true")
    assert not server.connect("postgres", ssl_mode="disable")[0]


def test_client_certificate_authentication(server):
    server.hba(spec(tls={"clientAuth": "certificate"}))
    ok, error = server.connect("app")
    assert not ok and "certificate" in error, error
    assert server.connect("app", cert="app", password=False) == (True, "app true")
    server.hba(spec(tls={"clientAuth": "passwordAndCertificate"}))
    assert not server.connect("app", cert="app", password=False)[0], "the password is asked too"
    assert not server.connect("app")[0], "the certificate is asked too"
    assert server.connect("app", cert="app") == (True, "app true")


def test_a_renewed_server_certificate_is_served_after_the_watcher_reloads_the_server(server):
    server.hba(spec())
    before = server.served_serial()
    # The operator renews it (here: it is gone from its Secret); the kubelet updates the mounted files.
    stale = dict(server.secrets)
    name = server.pgc["names"]["server_tls"]
    stale[name] = {"metadata": stale[name]["metadata"],
                   "data": {k: v for k, v in stale[name]["data"].items() if k != "tls.crt"}}
    renewed = text(issued(server.pgc, stale))
    assert renewed[name]["ca.crt"] == server.files[name]["ca.crt"], "the same CA: clients keep trusting it"
    watcher = subprocess.Popen([sys.executable, str(RELOAD), str(server.proc.pid), str(server.dir / "tls")],
                               env={"PGC_RELOAD_INTERVAL": "0.2", "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert watcher.stderr.readline().startswith("pgc-reload: watching"), "the watcher has its first look"
        server.files = renewed
        server.write(name, "tls")
        server.chown()
        wait_for(lambda: server.served_serial() != before, 20, "the renewed certificate was not served")
        assert server.connect("app") == (True, "app true"), "clients check it with the same ca.crt"
    finally:
        watcher.kill()
        watcher.wait()

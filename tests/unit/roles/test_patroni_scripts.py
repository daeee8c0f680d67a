"""The scripts Patroni runs from the ConfigMap: they must never take a member down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CALLBACK = REPO / "roles/provision/files/pgc-callback.py"
POST_BOOTSTRAP = REPO / "roles/provision/files/pgc-post-bootstrap.sh"
RELOAD = REPO / "roles/provision/files/pgc-reload.py"
# A server that counts its SIGHUPs, waiting for signals until it is killed.
HUP_COUNTER = ("import signal\n"
               "signal.signal(signal.SIGHUP, lambda *a: print('hup', flush=True))\n"
               "print('ready', flush=True)\n"
               "while True:\n"
               "    signal.pause()\n")


def _lines_within(proc, want, seconds):
    import select
    import time
    deadline, seen = time.monotonic() + seconds, []
    while time.monotonic() < deadline and seen.count("hup") < want:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            seen.append(proc.stdout.readline().strip())
    return seen.count("hup")


def test_the_reload_watcher_signals_its_server_once_per_change_of_a_mounted_secret(tmp_path):
    """As the kubelet updates a Secret volume: a new ..<time> directory, ..data swapped to it."""
    mount = tmp_path / "tls"
    mount.mkdir()

    def publish(version, text):
        data = mount / ("..%d" % version)
        data.mkdir()
        (data / "tls.crt").write_text(text)
        (mount / "..data.tmp").symlink_to(data.name)
        (mount / "..data.tmp").replace(mount / "..data")
        if not (mount / "tls.crt").is_symlink():
            (mount / "tls.crt").symlink_to("..data/tls.crt")

    publish(1, "first")
    server = subprocess.Popen([sys.executable, "-c", HUP_COUNTER], stdout=subprocess.PIPE, text=True)
    watcher = None
    try:
        assert server.stdout.readline().strip() == "ready"
        watcher = subprocess.Popen([sys.executable, str(RELOAD), str(server.pid), str(mount)],
                                   env={"PGC_RELOAD_INTERVAL": "0.1", "PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE,
                                   text=True)
        assert watcher.stderr.readline().startswith("pgc-reload: watching"), "the watcher has its first look"
        assert _lines_within(server, 1, 1.0) == 0, "nothing changed: no reload"
        publish(2, "second")
        assert _lines_within(server, 1, 10) == 1
        publish(3, "second")  # the same content anew: no reload
        assert _lines_within(server, 1, 1.0) == 0
    finally:
        server.kill()
        server.wait()
    # The server gone, the watcher ends too.
    assert watcher.wait(timeout=10) == 0


def test_the_callback_reports_an_unreachable_api_server_and_exits_zero(tmp_path):
    (tmp_path / "token").write_text("not-a-real-token")
    (tmp_path / "ca.crt").write_text("")
    env = {"PATH": "/usr/bin:/bin", "PGC_SERVICEACCOUNT_DIR": str(tmp_path), "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": "1", "PATRONI_NAME": "db-0", "PATRONI_KUBERNETES_NAMESPACE": "prod"}
    proc = subprocess.run([sys.executable, str(CALLBACK), "on_role_change", "primary", "db"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "could not annotate PostgresCluster db" in proc.stderr
    assert "not-a-real-token" not in proc.stderr + proc.stdout


def test_the_callback_ignores_a_call_it_does_not_understand():
    proc = subprocess.run([sys.executable, str(CALLBACK)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "usage" in proc.stderr


def test_the_post_bootstrap_script_keeps_the_password_off_command_lines_and_logs(tmp_path):
    """psql gets the password from its environment; a fake psql records what it was given."""
    fake = tmp_path / "psql"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD.argv"\ncat > "$RECORD.stdin"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "RECORD": str(tmp_path / "psql"), "PGC_APP_USERNAME": "shop",
           "PGC_APP_PASSWORD": "s3cret-Pw", "PGC_APP_DATABASE": "shopdb", "PGC_MONITOR_USERNAME": "pgc_monitor"}
    proc = subprocess.run(["sh", str(POST_BOOTSTRAP), "db", "host=/tmp"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    argv = (tmp_path / "psql.argv").read_text()
    script = (tmp_path / "psql.stdin").read_text()
    assert "s3cret-Pw" not in argv and "s3cret-Pw" not in script
    assert "app_user=shop" in argv.splitlines()
    assert "\\getenv app_password PGC_APP_PASSWORD" in script
    # No statement of the session is logged: CREATE ROLE ... PASSWORD would be.
    assert script.index("SET log_statement = 'none'") < script.index("CREATE ROLE")


def _callback_patches(tmp_path, monkeypatch, action, role, psql_output):
    """The annotations the callback patches its cluster with, psql being a script that prints
    ``psql_output`` (and records its arguments)."""
    import contextlib
    import importlib.util
    import json
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "psql").write_text('#!/bin/sh\necho "$@" > "%s/psql-args"\nprintf "%%s\\n" "%s"\n' % (tmp_path, psql_output))
    os.chmod(bin_dir / "psql", 0o755)
    (tmp_path / "token").write_text("t")
    for key, value in {"PATH": "%s:/usr/bin:/bin" % bin_dir, "PGC_SERVICEACCOUNT_DIR": str(tmp_path),
                       "KUBERNETES_SERVICE_HOST": "127.0.0.1", "PGC_POD_NAME": "db-1",
                       "PATRONI_KUBERNETES_NAMESPACE": "prod", "PGC_MONITOR_USERNAME": "pgc_monitor"}.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("pgc_callback", CALLBACK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sent = []
    monkeypatch.setattr(module.ssl, "create_default_context", lambda **kw: None)
    monkeypatch.setattr(module.urllib.request, "urlopen",
                        lambda request, **kw: sent.append(json.loads(request.data)) or contextlib.nullcontext())
    module.notify(action, role, "db")
    return sent[0]["metadata"]["annotations"]


def test_the_callback_of_a_promoted_member_stamps_the_last_transaction_it_replayed(tmp_path, monkeypatch):
    stamps = _callback_patches(tmp_path, monkeypatch, "on_role_change", "primary", "2026-11-30T01:00:02.100000Z")
    when, member, last = stamps["postgres.example.com/promoted"].split()
    assert (member, last) == ("db-1", "2026-11-30T01:00:02.100000Z") and when.endswith("Z")
    assert "postgres.example.com/primary-stopped" not in stamps
    # As the monitoring role, over the socket libpq finds from PGHOST: no password anywhere.
    assert "-U pgc_monitor" in (tmp_path / "psql-args").read_text()
    # Whatever psql says that is not one time is not passed on.
    stamps = _callback_patches(tmp_path / "again", monkeypatch, "on_role_change", "primary", "a b")
    assert stamps["postgres.example.com/promoted"].split()[2] == "-"


def test_the_callback_of_a_stopped_primary_stamps_when_writes_ended(tmp_path, monkeypatch):
    stamps = _callback_patches(tmp_path, monkeypatch, "on_stop", "primary", "")
    assert stamps["postgres.example.com/primary-stopped"].split()[1] == "db-1"
    assert "postgres.example.com/promoted" not in stamps
    stamps = _callback_patches(tmp_path / "replica", monkeypatch, "on_stop", "replica", "")
    assert set(stamps) == {"postgres.example.com/member-event"}


def _idle_process():
    """A process that lives until it is killed (it waits on its own stdin, which nobody writes)."""
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def _said(proc, text, seconds):
    """Whether ``proc`` writes a line with ``text`` on its stderr within ``seconds``."""
    import select
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.1)
        if ready and text in proc.stderr.readline():
            return True
    return False


class _FakeApiServer:
    """An HTTPS server that plays the API server's ConfigMap <scope>-config: it answers GET with
    Patroni's configuration and records each PATCH."""

    def __init__(self, tmp_path, config_text):
        import http.server
        import json
        import ssl
        import threading

        import tests.unit.conftest  # noqa: F401 - makes the collection importable
        from ansible_collections.postgres.cluster.plugins.module_utils import tls

        ca = tls.new_ca("test", "test/api")
        crt, key = tls.sign(ca, "127.0.0.1", ["127.0.0.1"])
        for name, text in (("ca.crt", ca["tls.crt"]), ("server.crt", crt), ("server.key", key),
                           ("token", "t"), ("namespace", "prod")):
            (tmp_path / name).write_text(text)
        self.patches = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's interface
                body = json.dumps({"metadata": {"name": "db-config", "resourceVersion": "41",
                                                "annotations": {"config": config_text}}}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PATCH(self):  # noqa: N802
                outer.patches.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.env = {"PGC_SERVICEACCOUNT_DIR": str(tmp_path), "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                    "KUBERNETES_SERVICE_PORT": str(self.server.server_address[1])}

    def close(self):
        self.server.shutdown()


def test_the_reload_watcher_wakes_patroni_when_the_postmaster_crashes_and_not_when_it_stops(tmp_path):
    import json

    from tests.dataplane.harness import hold, wait_for

    api = _FakeApiServer(tmp_path, '{"loop_wait":10,"ttl":30}')
    patroni = _idle_process()
    pid_file = tmp_path / "postmaster.pid"
    watcher = None

    def postmaster():
        proc = _idle_process()
        pid_file.write_text("%d\n/var/lib/postgresql/data/pgdata\n" % proc.pid)
        return proc

    try:
        first = postmaster()
        watcher = subprocess.Popen([sys.executable, str(RELOAD), str(patroni.pid)], stderr=subprocess.PIPE, text=True,
                                   env={"PATH": "/usr/bin:/bin", "PGC_POSTMASTER_PID": str(pid_file),
                                        "PGC_WAKE_CONFIGMAP": "db-config", **api.env})
        assert "and the postmaster of" in watcher.stderr.readline()
        assert _said(watcher, "postmaster %d running" % first.pid, 5)
        # A shutdown removes the pid file: nobody to wake.
        first.kill()
        first.wait()
        pid_file.unlink()
        hold(1.5, lambda: not api.patches, "a postmaster that stopped woke Patroni", interval=0.05)
        # A crash leaves it: Patroni's configuration is rewritten, the same, spelt otherwise.
        second = postmaster()
        assert _said(watcher, "postmaster %d running" % second.pid, 5)
        second.kill()
        second.wait()
        wait_for(lambda: api.patches, 10, "a crashed postmaster did not wake Patroni", interval=0.05)
        assert len(api.patches) == 1
        path, body = api.patches[0]
        assert path == "/api/v1/namespaces/prod/configmaps/db-config"
        assert body["metadata"]["resourceVersion"] == "41"
        assert body["metadata"]["annotations"]["config"] == '{"loop_wait": 10, "ttl": 30}'
        assert json.loads(body["metadata"]["annotations"]["config"]) == {"loop_wait": 10, "ttl": 30}
        hold(1.5, lambda: len(api.patches) == 1, "once per crash", interval=0.05)
    finally:
        patroni.kill()
        patroni.wait()
        api.close()
    # Patroni gone, the watcher ends too.
    assert watcher.wait(timeout=10) == 0

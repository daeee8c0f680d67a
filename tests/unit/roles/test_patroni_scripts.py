"""The scripts Patroni runs from the ConfigMap: they must never take a member down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CALLBACK = REPO / "roles/provision/files/pgc-callback.py"
POST_BOOTSTRAP = REPO / "roles/provision/files/pgc-post-bootstrap.sh"


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


def test_the_post_bootstrap_script_passes_the_password_on_stdin_only():
    text = POST_BOOTSTRAP.read_text()
    assert subprocess.run(["sh", "-n", str(POST_BOOTSTRAP)]).returncode == 0
    assert "$PGC_APP_PASSWORD" in text and "<<'SQL'" in text
    # psql sees a variable, which it quotes as a literal itself (%L), never a command line with it.
    assert "-c" not in text.split()

"""Backups taken the way the backup Job takes them: pgBackRest reaches the primary through the
``pgbackrest server`` (TLS) beside PostgreSQL, never by exec into the pod. Real PostgreSQL 15 and
pgBackRest processes on loopback, configured by pgc_pgbackrest_config's roles, with the
certificate of pgc_backup_tls:

* the database "pod" (PostgreSQL, its archive_command, its TLS server) and the "job" (pg1 remote),
  into the S3 repository; a client certificate of another CA is refused;
* a volume repository behind a repository host ("repo-host"): the pod archives WAL and restores
  through it, the Job writes the backup into the directory itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dataplane.backup.harness import (CIPHER_PASS, LOOPBACK, S3_KEY, S3_KEY_SECRET, Postgres, TlsServer, _pgc,
                                            free_ports, give, write_tls)

pytestmark = pytest.mark.timeout(300)

HOST = "localhost"  # on the certificate (extra_names), as <name>.<namespace>.svc is in a cluster


def _flt():
    from ansible_collections.postgres.cluster.plugins.filter import backup as flt
    return flt


class Deployment:
    """One cluster's database "pod" (PostgreSQL + TLS server), its backup "job" and, for a volume,
    its repository host, each with the configuration file and environment it has in Kubernetes."""

    def __init__(self, ws, name: str, backup: dict, ca_file: Path | None = None, repo_dir: Path | None = None):
        flt = _flt()
        self.ws = ws
        self.name = name
        self.pgc = _pgc(name, backup)
        self.settings = flt.pgc_pgbackrest_settings(self.pgc)
        self.s3 = self.settings["type"] == "s3"
        self.ca_file = ca_file
        self.repo_dir = repo_dir
        self.server = Postgres(ws, name)
        self.pod_port, self.repo_port = free_ports(2)
        self.tls_dir = write_tls(ws, flt.pgc_backup_tls(self.pgc, extra_names=[HOST, LOOPBACK]), name)
        self.dir = ws.path("pg", name)
        self.configs = {}
        for role in ("pod", "job", "repo-host"):
            if role == "repo-host" and self.s3:
                continue
            self.configs[role] = self.write_config(role, self.tls_dir)
        self.tls_servers: list[TlsServer] = []

    def render(self, role: str, tls_dir: Path) -> str:
        options = {"lock-path": str(self.ws.path("locks", self.name, role))}
        if self.s3:
            # The endpoint keeps the name on the certificate; connections go to loopback.
            options["repo1-storage-host"] = LOOPBACK
        return _flt().pgc_pgbackrest_config(
            self.pgc, role=role, pg_host=HOST, repo_host=HOST, tls_dir=str(tls_dir),
            pg_path=str(self.server.data_dir), socket_path=str(self.server.socket_dir), port=self.server.port,
            repo_path=str(self.repo_dir or ""), ca_file=str(self.ca_file or ""), options=options,
            tls_address=LOOPBACK, tls_port=self.repo_port if role == "repo-host" else self.pod_port,
            pg_host_port=self.pod_port, repo_host_port=self.repo_port)

    def write_config(self, role: str, tls_dir: Path, text: str | None = None) -> Path:
        path = self.dir / f"pgbackrest-{role}-{tls_dir.name}.conf"
        path.write_text(text or self.render(role, tls_dir))
        give(path)
        return path

    def env(self, role: str, config: Path | None = None) -> dict[str, str]:
        """What the pod, the Job or the repository host has in its environment (the Secrets)."""
        e = {"PGBACKREST_STANZA": self.name, "PGBACKREST_CONFIG": str(config or self.configs[role])}
        if self.s3:
            e.update({"PGBACKREST_REPO1_S3_KEY": S3_KEY, "PGBACKREST_REPO1_S3_KEY_SECRET": S3_KEY_SECRET})
        # The volume's cipher is the repository host's business (and the Job's, which writes into it).
        if self.settings["encryption"] and (self.s3 or role != "pod"):
            e["PGBACKREST_REPO1_CIPHER_PASS"] = CIPHER_PASS
        return e

    def start(self) -> Postgres:
        flt = _flt()
        if "repo-host" in self.configs:
            self.tls_servers.append(TlsServer(self.ws, f"{self.name}-repo", self.configs["repo-host"], self.repo_port,
                                              env=self.env("repo-host")).start())
        self.server.initdb()
        self.server.configure(archive_mode="on", wal_level="replica", max_wal_size="1GB",
                              archive_command=flt.pgc_pgbackrest_archive_command(self.pgc, config=str(self.configs["pod"])))
        self.server.start(env=self.env("pod"))
        self.tls_servers.append(TlsServer(self.ws, f"{self.name}-pod", self.configs["pod"], self.pod_port,
                                          env=self.env("pod")).start())
        return self.server

    def stop(self) -> None:
        for s in self.tls_servers:
            s.stop()

    def job(self, *args: str, config: Path | None = None, result_file: Path | None = None, check: bool = True):
        """pgc-backup.sh as the backup Job runs it: the "job" configuration, no PostgreSQL of its own."""
        env = self.env("job", config)
        if result_file:
            env["PGC_RESULT_FILE"] = str(result_file)
        return self.server.run(self.ws.bin / "pgc-backup.sh", *args, check=check, env=env)

    def restore(self, target: Path, *args: str):
        """pgc-restore.sh in a database pod (its configuration), then the copy started on its own."""
        out = self.server.run(self.ws.bin / "pgc-restore.sh", f"--datadir={target}", "--archive-mode=off", *args,
                              env=self.env("pod"))
        copy = Postgres(self.ws, f"{self.name}-copy-{target.name}", data_dir=target)
        copy.start(env=self.env("pod"))
        copy.wait_promoted()
        return json.loads(out.stdout), copy


def _rows(server, first: int, last: int) -> None:
    server.sql("CREATE TABLE IF NOT EXISTS rows (id int PRIMARY KEY, v text)")
    server.sql("INSERT INTO rows SELECT g, md5(g::text) FROM generate_series(%s::int, %s::int) g", (first, last))


@pytest.fixture
def deployments():
    made = []
    yield made
    for d in made:
        d.stop()


def test_job_backs_up_the_primary_over_tls_into_s3_and_refuses_another_ca(workspace, object_store, deployments):
    """The Job's pgc-backup.sh reaches PostgreSQL only through the pod's TLS server and writes its
    result to PGC_RESULT_FILE; the pod restores it. A client certificate of another CA is refused
    and leaves the result file empty."""
    object_store.create_bucket("tls")
    d = Deployment(workspace, "tlsdb", object_store.backup_spec("tls", "/pgc/dp/tlsdb"), ca_file=object_store.ca_file)
    deployments.append(d)
    src = d.start()
    _rows(src, 1, 1000)

    result = workspace.dir / "tlsdb-termination-log"
    proc = d.job("full", result_file=result)
    out = json.loads(proc.stdout)
    assert result.read_text().strip() == proc.stdout.strip(), "the same JSON line in the result file"
    assert out["stanza"] == "tlsdb" and out["type"] == "full"
    assert out["repository_path"] == f"/pgc/dp/tlsdb/backup/tlsdb/{out['label']}"
    stored = object_store.objects("tls", out["repository_path"].lstrip("/") + "/")
    assert any(k.endswith("/backup.manifest") for k in stored), sorted(stored)

    _rows(src, 1001, 1500)
    src.switch_wal_and_wait_archived()
    expected = src.table_digest("rows")
    restored, copy = d.restore(workspace.dir / "tlsdb-restore")
    assert restored["label"] == out["label"]
    assert copy.table_digest("rows") == expected
    copy.stop()

    # The right CA (the server's certificate verifies) but a client certificate of another CA.
    other = write_tls(workspace, _flt().pgc_backup_tls(d.pgc, extra_names=[HOST, LOOPBACK]), "tlsdb-other-ca")
    text = d.render("job", other).replace(f"pg1-host-ca-file={other}/ca.crt", f"pg1-host-ca-file={d.tls_dir}/ca.crt")
    refused_result = workspace.dir / "tlsdb-refused-termination-log"
    refused = d.job("full", config=d.write_config("job", other, text), result_file=refused_result, check=False)
    assert refused.returncode != 0
    assert "pgbackrest check failed" in refused.stderr or "pgbackrest info failed" in refused.stderr, refused.stderr
    assert not refused_result.exists() or refused_result.read_text() == "", "nothing in the result file on failure"
    assert refused.stdout == ""


def test_volume_repository_through_the_repository_host(workspace, deployments):
    """Encrypted volume repository: the pod archives WAL through the repository host's TLS server,
    the Job (the volume mounted, PostgreSQL remote) takes the backup, the pod restores through the
    repository host up to the last archived row."""
    repo = workspace.path("repo-host-volume")
    d = Deployment(workspace, "voldb", {"repository": {"volume": {"size": "1Gi"}}, "encryption": True}, repo_dir=repo)
    deployments.append(d)
    src = d.start()
    _rows(src, 1, 1000)

    out = json.loads(d.job("full").stdout)
    assert out["repository_path"] == f"{repo}/backup/voldb/{out['label']}"
    assert (Path(out["repository_path"]) / "backup.manifest").is_file()
    _rows(src, 1001, 2000)
    segment = src.switch_wal_and_wait_archived()
    archived = [p for p in (repo / "archive" / "voldb").rglob(f"{segment}-*")]
    assert archived, f"{segment} was archived through the repository host into the volume"
    assert archived[0].read_bytes().startswith(b"Salted__"), "the repository host encrypts"
    expected = src.table_digest("rows")

    restored, copy = d.restore(workspace.dir / "voldb-restore")
    assert restored["label"] == out["label"]
    assert copy.table_digest("rows") == expected
    copy.stop()

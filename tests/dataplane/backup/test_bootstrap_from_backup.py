"""A new cluster created from another cluster's backup (spec.bootstrap.fromBackup), with real
Patroni 4 members on the local control plane: Patroni's custom bootstrap (pgc_patroni_backup_config)
runs pgc-bootstrap-from-backup.sh, which restores the source's S3 backup up to a point in time; the
new primary promotes, its replica clones from it, and its WAL goes to its own stanza.

The Patroni configuration is pgc_patroni_config merged with pgc_patroni_backup_config, as the
operator renders it, with the harness's timings; the pods' environment comes from
pgc_pgbackrest_environment and pgc_pgbackrest_source_environment, the Secrets' values filled in.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.dataplane.backup.harness import (CIPHER_PASS, LOOPBACK, S3_KEY, S3_KEY_SECRET, Cluster, give, merge_into,
                                            utc_now)
from tests.dataplane.conftest import cluster_objects, pods_running
from tests.dataplane.harness import DataPlane, wait_for

pytestmark = pytest.mark.timeout(400)

SECRET_VALUES = {"access-key-id": S3_KEY, "secret-access-key": S3_KEY_SECRET, "passphrase": CIPHER_PASS}


def _env(env_vars: list[dict]) -> dict[str, str]:
    """EnvVar objects with the test Secrets' values in place of their references."""
    out = {}
    for var in env_vars:
        ref = (var.get("valueFrom") or {}).get("secretKeyRef")
        out[var["name"]] = SECRET_VALUES[ref["key"]] if ref else var["value"]
    return out


class NewCluster:
    """The objects and member environment of a cluster bootstrapping from ``source``'s backups."""

    def __init__(self, ws, object_store, name: str, source: Cluster, replicas: int, **from_backup):
        from ansible_collections.postgres.cluster.plugins.filter import backup as flt
        from ansible_collections.postgres.cluster.plugins.filter.pgc import pgc_normalize, pgc_patroni_config
        self.name = name
        self.source = source
        self.replicas = replicas
        spec = {"backup": object_store.backup_spec(source.settings["s3"]["bucket"], f"/pgc/dp/{name}"),
                "bootstrap": {"fromBackup": {"cluster": source.name, "repository": source.pgc["spec"]["backup"]["repository"],
                                             "encryption": None, "encryptionSecretName": "", **from_backup}}}
        self.pgc = pgc_normalize({"metadata": {"name": name, "namespace": "dp"}, "spec": spec})
        lock = ws.path("locks", name)
        options = {"lock-path": str(lock), "repo1-storage-host": LOOPBACK}
        self.own_config = ws.path("pg", name) / "pgbackrest.conf"
        self.own_config.write_text(flt.pgc_pgbackrest_config(self.pgc, role="pod", ca_file=str(object_store.ca_file),
                                                             options=options))
        self.source_config = ws.path("pg", name) / "source.conf"
        self.source_config.write_text(flt.pgc_pgbackrest_config(self.pgc, role="source",
                                                                ca_file=str(object_store.ca_file), options=options))
        give(ws.path("pg", name))
        env = _env(flt.pgc_pgbackrest_environment(self.pgc) + flt.pgc_pgbackrest_source_environment(self.pgc))
        env.update({"PGBACKREST_CONFIG": str(self.own_config), "PGC_SOURCE_CONFIG": str(self.source_config)})
        self.env = env

        config = pgc_patroni_config(self.pgc)
        merge_into(config, flt.pgc_patroni_backup_config(self.pgc, config=str(self.own_config), scripts_dir=str(ws.bin)))
        # The harness's short timings; no operator to call back; the stanza made after the bootstrap.
        config["bootstrap"]["dcs"].update({"ttl": 20, "loop_wait": 2, "retry_timeout": 5})
        config["postgresql"].pop("callbacks", None)
        config["bootstrap"]["post_bootstrap"] = f"{ws.bin}/pgc-stanza-create.sh"
        config["kubernetes"].update({"leader_label_value": "primary", "follower_label_value": "replica"})
        self.config = config

    def member_env(self, member) -> dict[str, str]:
        # pgBackRest's pg1-* are the member's (constants in a pod).
        return {**self.env, "PGBACKREST_PG1_PATH": str(member.data_dir), "PGBACKREST_PG1_PORT": str(member.pg_port),
                "PGBACKREST_PG1_SOCKET_PATH": str(member.socket_dir)}

    def apply(self, kube, namespace) -> None:
        objs = cluster_objects(self.name, yaml.safe_dump(self.config, sort_keys=False))
        for obj in objs:
            if obj["kind"] == "StatefulSet":
                obj["spec"]["replicas"] = self.replicas
        kube.run("apply", "--server-side", "--field-manager=dataplane-test", "-n", namespace, "-f", "-",
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
        wait_for(lambda: pods_running(kube, namespace, self.name, self.replicas), 60,
                 f"the kwok pods of {self.name} did not become Running/Ready")

    def plane(self, kube, namespace) -> DataPlane:
        return DataPlane(namespace, self.name, kube=kube, member_env=self.member_env)


def _marks(server, first: int, last: int) -> None:
    server.sql("INSERT INTO marks SELECT g, md5(g::text) FROM generate_series(%s::int, %s::int) g", (first, last))


def _digest(plane, pod) -> tuple:
    return tuple(plane.execute(pod, "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                    "FROM marks t")[0])


@pytest.fixture(scope="module")
def source(workspace, object_store):
    """A cluster with a full backup in S3, rows after it, a time T, and rows after T (all archived)."""
    object_store.create_bucket("origin")
    cluster = Cluster(workspace, "origin", object_store.backup_spec("origin", "/pgc/dp/origin"),
                      ca_file=object_store.ca_file)
    src = cluster.init()
    src.sql("CREATE TABLE marks (id int PRIMARY KEY, v text)")
    _marks(src, 1, 100)
    cluster.backup = cluster.script_json("pgc-backup.sh", "full")[0]
    _marks(src, 101, 200)
    cluster.target_time = utc_now(src)
    cluster.at_target = src.table_digest("marks")
    _marks(src, 201, 300)
    src.switch_wal_and_wait_archived()
    return cluster


def test_new_cluster_restores_up_to_the_target_time_and_archives_to_its_own_stanza(
        workspace, object_store, source, kube, namespace, dataplane_deps, summary):
    new = NewCluster(workspace, object_store, "restored", source, replicas=2, targetTime=source.target_time)
    new.apply(kube, namespace)
    started = time.monotonic()
    with new.plane(kube, namespace).started() as plane:
        leader = plane.wait_for_leader(timeout=150)
        plane.wait_streaming(leader, timeout=90)
        elapsed = time.monotonic() - started
        assert _digest(plane, leader) == source.at_target, f"exactly the rows committed at {source.target_time}"
        assert plane.execute(leader, "SELECT max(id) FROM marks")[0][0] == 200
        assert plane.execute(leader, "SELECT pg_is_in_recovery()")[0][0] is False
        log = plane.member(leader).log()
        assert "Running custom bootstrap script" in log and "pgc-restore: restoring" in log, log[-3000:]

        # WAL of the new timeline goes to the cluster's own stanza, none to the source's.
        assert "--stanza=restored" in plane.execute(leader, "SHOW archive_command")[0][0]
        plane.execute(leader, "INSERT INTO marks VALUES (1000, 'after the bootstrap')")
        segment = plane.execute(leader, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        assert not segment.startswith("00000001"), f"a new timeline after the promotion, not {segment}"
        wait_for(lambda: any(segment in k for k in object_store.objects("origin", "pgc/dp/restored/archive/restored/")),
                 60, f"{segment} was not archived into the stanza restored")
        source_keys = object_store.objects("origin", "pgc/dp/origin/archive/origin/")
        assert not any("/" + segment[:8] in k or k.endswith(segment[:8] + ".history") for k in source_keys), \
            "the source's stanza got WAL of the new cluster"

        # The replica cloned from the restored primary; its restore_command is the cluster's own.
        replica = plane.replicas(leader)[0]
        wait_for(lambda: _digest(plane, replica) == _digest(plane, leader), 30, "the replica has the primary's rows")
        assert "--stanza=restored" in plane.execute(replica, "SHOW restore_command")[0][0]
    summary.append(f"bootstrap from backup: leader and a streaming replica {elapsed:.1f}s after start "
                   f"(restore up to {source.target_time})")


def test_bootstrap_from_a_missing_backup_fails_without_a_primary(
        workspace, object_store, source, kube, namespace, dataplane_deps):
    new = NewCluster(workspace, object_store, "nobackup", source, replicas=1, backup="20200101-000000F")
    new.apply(kube, namespace)
    plane = new.plane(kube, namespace)
    with plane.started():
        member = plane.member("nobackup-0")
        wait_for(lambda: not member.running(), 90, "Patroni did not give up the bootstrap")
        log = member.log()
        assert "backup set 20200101-000000F does not exist" in log, log[-3000:]
        assert "removing initialize key after failed attempt to bootstrap the cluster" in log, log[-3000:]
        assert plane.labelled_primaries() == []
        assert not member.data_dir.exists() or not any(member.data_dir.iterdir())

"""pgc-restore-in-place.sh, which the restore playbook's Jobs run on a stopped member's data: the
check changes nothing, a refused restore leaves the data as it was, and a restore to a time leaves a
promoted server at that time, which starts with exactly the rows committed then."""

from __future__ import annotations

import json

from tests.dataplane.backup.harness import Cluster, utc_now
from tests.dataplane.backup.test_backup_restore import add_marks, volume_spec


def backed_up(workspace, name, load=None):
    """A server with 100 marks and a full backup of them in a volume repository: (cluster, server, label).
    ``load(server)``, when given, writes more before the backup."""
    cluster = Cluster(workspace, name, volume_spec(), retention=2, repo_path=workspace.dir / f"repo-{name}")
    server = cluster.init()
    server.sql("CREATE TABLE marks (id int PRIMARY KEY, phase text NOT NULL)")
    add_marks(server, 1, 100, "before the backup")
    if load:
        load(server)
    return cluster, server, cluster.script_json("pgc-backup.sh", "full")[0]["label"]


def test_restore_in_place_checks_refuses_and_recovers_to_a_time(workspace):
    cluster, server, label = backed_up(workspace, "inplace")
    add_marks(server, 101, 200, "before T")
    target_time = utc_now(server)
    server.switch_wal_and_wait_archived()
    add_marks(server, 201, 300, "after T")
    server.switch_wal_and_wait_archived()
    env = {"PGDATA": str(server.data_dir)}

    # The playbook's first Job: only checks, and says why a backup cannot be restored.
    checked = cluster.script_json("pgc-restore-in-place.sh", "--check-only", f"--set={label}", env=env)
    assert checked == [{"checked": True, "label": label, "needs": [label]}]
    missing = cluster.script("pgc-restore-in-place.sh", "--check-only", "--set=20990101-000000F", check=False, env=env)
    assert missing.returncode != 0 and "does not exist" in missing.stderr

    server.stop()
    before = sorted(p.name for p in server.data_dir.iterdir())
    refused = cluster.script("pgc-restore-in-place.sh", "--set=20990101-000000F", check=False, env=env)
    assert refused.returncode != 0 and "the data directory is as it was" in refused.stderr
    assert sorted(p.name for p in server.data_dir.iterdir()) == before
    server.start(env=cluster.env())
    assert server.value("SELECT count(*) FROM marks") == 300
    server.stop()

    out = cluster.script("pgc-restore-in-place.sh", f"--target-time={target_time}", env=env).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["label"] == label and result["timeline"] == 2
    assert not (server.data_dir.parent / (server.data_dir.name + ".before-restore")).exists()
    # What Patroni then starts: a primary at T, no longer in recovery.
    server.start(env=cluster.env())
    assert server.in_recovery() is False
    assert server.value("SELECT count(*) FROM marks") == 200
    assert server.value("SELECT max(id) FROM marks") == 200


def test_a_restore_killed_half_way_is_put_back_by_the_next_run_and_a_kept_copy_is_never_lost(workspace):
    """A Job killed outright (its deadline, an eviction) leaves the old data aside and a half-restored
    data directory: the next run puts the old data back first, then restores. A copy kept on purpose
    (PGC_KEEP_OLD_DATA) after a finished restore is refused, never overwritten."""
    import shutil
    import subprocess

    cluster, server, label = backed_up(workspace, "killed")
    add_marks(server, 101, 150, "after the backup")
    server.switch_wal_and_wait_archived()
    server.stop()
    env = {"PGDATA": str(server.data_dir)}
    aside = server.data_dir.parent / (server.data_dir.name + ".before-restore")

    # What a kill leaves: the data as it was aside, a half-written data directory in its place.
    shutil.move(server.data_dir, aside)
    server.data_dir.mkdir(mode=0o700)
    (server.data_dir / "PG_VERSION").write_text("15\n")
    subprocess.run(["chown", "-R", "--reference", str(aside), str(server.data_dir)], check=True)

    refused = cluster.script("pgc-restore-in-place.sh", "--set=20990101-000000F", check=False, env=env)
    assert "an earlier restore did not finish: putting the data as it was" in refused.stderr
    assert refused.returncode != 0 and "the data directory is as it was" in refused.stderr
    assert not aside.exists()
    server.start(env=cluster.env())
    assert server.value("SELECT count(*) FROM marks") == 150, "the data as it was, back in place"
    server.stop()

    kept = cluster.script_json("pgc-restore-in-place.sh", f"--set={label}", env={**env, "PGC_KEEP_OLD_DATA": "1"})
    assert kept[-1]["label"] == label and (aside / ".pgc-restore-finished").exists()
    again = cluster.script("pgc-restore-in-place.sh", f"--set={label}", check=False, env=env)
    assert again.returncode != 0 and "kept by an earlier restore" in again.stderr
    assert (aside / "PG_VERSION").exists(), "the kept copy is untouched"

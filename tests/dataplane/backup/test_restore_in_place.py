"""pgc-restore-in-place.sh, which the restore playbook's Jobs run on a stopped member's data: the
check changes nothing, a refused restore leaves the data as it was, and a restore to a time leaves a
promoted server at that time, which starts with exactly the rows committed then."""

from __future__ import annotations

import json

from tests.dataplane.backup.harness import Cluster, utc_now
from tests.dataplane.backup.test_backup_restore import add_marks, volume_spec


def test_restore_in_place_checks_refuses_and_recovers_to_a_time(workspace):
    cluster = Cluster(workspace, "inplace", volume_spec(), retention=2, repo_path=workspace.dir / "repo-inplace")
    server = cluster.init()
    server.sql("CREATE TABLE marks (id int PRIMARY KEY, phase text NOT NULL)")
    add_marks(server, 1, 100, "before the backup")
    label = cluster.script_json("pgc-backup.sh", "full")[0]["label"]
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

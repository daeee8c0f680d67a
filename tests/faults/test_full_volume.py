"""A full data volume under the primary, with real Patroni and PostgreSQL members on loopback (the
data-plane harness) and the local API server as their store. Each member's directory is a tmpfs of
its own, as a pod's data volume is its own filesystem.

A full volume is no crash: PostgreSQL refuses the writes that need space ("could not extend file",
or a PANIC and a restart when a WAL segment cannot be made), reads go on, and no member is
promoted (a replica's volume is as full). Once there is space again (the volume grown, or files
removed), the primary takes writes again without anyone's help. No acknowledged row is lost.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid

import pytest
import yaml

from tests.dataplane.conftest import CLUSTER_LABEL, REPLICAS, cluster_objects, patroni_config, pods_running
from tests.dataplane.harness import DataPlane, RowWriter, hold, wait_for

CLUSTER = "pgfull"
VOLUME = "256m"

pytestmark = pytest.mark.timeout(420)


def _config() -> str:
    cfg = yaml.safe_load(patroni_config())
    cfg["scope"] = CLUSTER
    cfg["kubernetes"]["labels"] = {CLUSTER_LABEL: CLUSTER}
    # Little WAL kept: the volumes are small.
    cfg["bootstrap"]["dcs"]["postgresql"]["parameters"]["wal_keep_size"] = "32MB"
    return yaml.safe_dump(cfg, sort_keys=False)


@contextlib.contextmanager
def _volumes(plane: DataPlane):
    """A tmpfs for each member's directory, unmounted once the members stopped."""
    mounted = []
    try:
        for ordinal in range(REPLICAS):
            path = plane.workdir / f"{CLUSTER}-{ordinal}"
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={VOLUME},mode=0755", "tmpfs", str(path)], check=True)
            mounted.append(path)
        yield
    finally:
        for path in mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path) -> int:
    """Write a ballast file until the filesystem is full; its size."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
                written += len(chunk)
    return written


@pytest.fixture
def full_plane(kube, dataplane_deps, namespace):
    objs = {"apiVersion": "v1", "kind": "List", "items": cluster_objects(CLUSTER, _config())}
    kube.run("apply", "--server-side", "--field-manager=fault-test", "-n", namespace, "-f", "-", input=json.dumps(objs))
    wait_for(lambda: pods_running(kube, namespace, CLUSTER, REPLICAS), 60,
             f"the {REPLICAS} kwok pods of {CLUSTER} did not become Running/Ready")
    plane = DataPlane(namespace, CLUSTER, kube=kube)
    try:
        with _volumes(plane), plane.started():
            yield plane
    finally:
        subprocess.run(["rm", "-rf", str(plane.workdir)], check=False)


def test_a_full_data_volume_refuses_writes_loses_nothing_and_recovers_when_there_is_space(full_plane, summary):
    plane = full_plane
    leader = plane.wait_streaming(timeout=120)
    plane.execute(leader, "CREATE TABLE full_rows (n int PRIMARY KEY, pad text)")
    writer = RowWriter(plane, "INSERT INTO full_rows VALUES (%s, repeat('x', 2000))")
    writer.start()
    try:
        wait_for(lambda: len(writer.acked) > 50, 30, "the writer does not commit")
        ballast = plane.member(leader).dir / f"ballast-{uuid.uuid4().hex}"
        size = _fill(ballast)
        wait_for(lambda: writer.refused, 60, "the primary still takes every write on a full volume")
        acked_when_full = len(writer.acked)
        # Full for a while: nobody is promoted meanwhile.
        hold(10, lambda: plane.leader() in (leader, None), "a full volume made another member the primary")
        refusals = sorted({r.split(":")[0] for r in writer.refused})

        ballast.unlink()
        freed = time.monotonic()
        wait_for(lambda: len(writer.acked) > acked_when_full + 20, 120, "no write taken once there was space again")
        recovered = time.monotonic() - freed
    finally:
        writer.halt.set()
        writer.join(15)
    present = {r[0] for r in plane.execute(plane.leader(), "SELECT n FROM full_rows")}
    lost = [n for n in writer.acked if n not in present]
    assert not lost, f"{len(lost)} acknowledged rows lost: {lost[:20]}"
    assert plane.leader() == leader
    restarted = "database system was interrupted" in plane.member(leader).log() or \
        "terminated by signal 6" in plane.member(leader).log()
    summary.append(f"full data volume under the primary ({VOLUME} tmpfs, {size >> 20} MiB ballast): writes refused "
                   f"({', '.join(refusals)}), no failover{', PostgreSQL restarted by Patroni' if restarted else ''}; "
                   f"writes taken again {recovered:.1f} s after space was freed; 0 of {len(writer.acked)} acknowledged "
                   f"rows lost")

#!/usr/bin/env python3
"""Patroni's callback for role changes, starts and stops of a member.

Patroni runs it as `pgc-callback.py ACTION ROLE SCOPE`. It stamps the annotation
postgres.example.com/member-event of the PostgresCluster named SCOPE with the member, the
action, the role and the time. The operator reconciles a cluster when its annotations change,
so the cluster's status follows a failover at once, without polling idle clusters.

Two more stamps date the failover history's write-unavailable windows:
- postgres.example.com/primary-stopped, when Patroni stopped PostgreSQL while it was the primary
  (a switchover or a shutdown: writes ended then);
- postgres.example.com/promoted, when the member became the primary, with the time of the last
  transaction it replayed from the old primary (pg_last_xact_replay_timestamp(), which stays
  after the promotion), read as the monitoring role over the pod's socket (PGHOST, PGPORT).

It authenticates as the pod's ServiceAccount, which may patch this one PostgresCluster and
nothing else of it. It never fails Patroni: a problem is written to stderr, and the next
reconcile catches up anyway. Only the Python standard library is used.
"""

import datetime
import json
import os
import ssl
import subprocess
import sys
import urllib.request

ANNOTATION = "postgres.example.com/member-event"
PROMOTED = "postgres.example.com/promoted"
PRIMARY_STOPPED = "postgres.example.com/primary-stopped"
PRIMARY_ROLES = ("primary", "master", "promoted")
LAST_COMMIT = ("SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', "
               "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '-')")
SERVICEACCOUNT = os.environ.get("PGC_SERVICEACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
TIMEOUT = 5


def _read(name):
    with open(os.path.join(SERVICEACCOUNT, name)) as f:
        return f.read().strip()


def notify(action, role, scope):
    # Patroni takes the PATRONI_* variables out of its environment: the pod names itself.
    member = os.environ.get("PGC_POD_NAME", "")
    namespace = os.environ.get("PATRONI_KUBERNETES_NAMESPACE") or _read("namespace")
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = "[%s]" % host
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    annotations = {ANNOTATION: " ".join((now, member, action, role))}
    if role in PRIMARY_ROLES and action == "on_stop":
        annotations[PRIMARY_STOPPED] = " ".join((now, member))
    elif role in PRIMARY_ROLES and action == "on_role_change":
        annotations[PROMOTED] = " ".join((now, member, last_commit()))
    body = {"metadata": {"annotations": annotations}}
    request = urllib.request.Request(
        "https://%s:%s/apis/postgres.example.com/v1/namespaces/%s/postgresclusters/%s" % (host, port, namespace, scope),
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": "Bearer " + _read("token"), "Content-Type": "application/merge-patch+json"},
    )
    context = ssl.create_default_context(cafile=os.path.join(SERVICEACCOUNT, "ca.crt"))
    with urllib.request.urlopen(request, context=context, timeout=TIMEOUT):
        pass


def last_commit():
    """The time of the last transaction replayed from the old primary, or '-'."""
    try:
        out = subprocess.run(["psql", "-XAtq", "-d", "postgres", "-U", os.environ.get("PGC_MONITOR_USERNAME", "pgc_monitor"),
                              "-c", LAST_COMMIT], capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        sys.stderr.write("pgc-callback: could not read the last replayed transaction: %s\n" % e)
        return "-"
    return out if out and " " not in out else "-"


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: %s ACTION ROLE SCOPE\n" % argv[0])
        return 0
    # Patroni kills a callback still running when it starts the next one (a demoted primary's
    # on_stop, then its on_role_change a moment later): the stamp is written by a process of its own.
    if os.fork():
        return 0
    os.setsid()
    if os.fork():
        os._exit(0)
    try:
        notify(*argv[1:])
    except Exception as e:  # noqa: BLE001 - a callback must not take Patroni down
        sys.stderr.write("pgc-callback: could not annotate PostgresCluster %s: %s\n" % (argv[3], e))
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

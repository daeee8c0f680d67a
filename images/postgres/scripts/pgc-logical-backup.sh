#!/usr/bin/env bash
# Dumps single databases with pg_dump (custom format) into the cluster's backup repository, beside
# pgBackRest's physical backups: <repo1-path>/logical/<stanza>/<database>/<label>.pgdump, with a
# manifest <label>.json (size and SHA-256 of the stored file). Prints one JSON line per database.
#
#   pgc-logical-backup.sh [DATABASE ...]      (default: $PGC_LOGICAL_DATABASES, comma or space separated)
#
# Settings, from the environment:
#   PGBACKREST_STANZA, PGBACKREST_CONFIG   the repository, as for pgc-backup.sh (pgc-repo.py reads them)
#   PGHOST, PGPORT, PGUSER, PGPASSWORD     where pg_dump connects (libpq's variables)
#   PGC_LOGICAL_RETENTION                  dumps kept per database (default 7)
#   PGBACKREST_REPO1_CIPHER_PASS           when repo1-cipher-type is set, dumps are encrypted with
#                                          it (openssl, AES-256-CBC, PBKDF2) before they leave the pod
set -euo pipefail

die() { printf 'pgc-logical-backup: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-logical-backup: %s\n' "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
repo() { python3 "${PGC_REPO_TOOL:-$here/pgc-repo.py}" "$@"; }

[ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the cluster's name)"
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
retention=${PGC_LOGICAL_RETENTION:-7}
case "$retention" in '' | *[!0-9]* | 0) die "PGC_LOGICAL_RETENTION must be a positive number" ;; esac
if [ $# -gt 0 ]; then
  databases=("$@")
else
  list=${PGC_LOGICAL_DATABASES:-}
  read -r -a databases <<<"${list//,/ }"
fi
[ ${#databases[@]} -gt 0 ] || die "no database to dump (arguments or PGC_LOGICAL_DATABASES)"

cipher=$(repo option repo1-cipher-type) || die "cannot read the repository settings"
encrypt=(cat)
suffix=
if [ -n "$cipher" ] && [ "$cipher" != none ]; then
  [ -n "${PGBACKREST_REPO1_CIPHER_PASS:-}" ] || die "repo1-cipher-type is $cipher but PGBACKREST_REPO1_CIPHER_PASS is not set"
  command -v openssl >/dev/null || die "openssl is needed to encrypt the dumps"
  encrypt=(openssl enc -e -aes-256-cbc -pbkdf2 -iter 100000 -md sha256 -salt -pass env:PGBACKREST_REPO1_CIPHER_PASS)
  suffix=.enc
fi

for db in "${databases[@]}"; do
  case "$db" in '' | */* | .*) die "invalid database name '$db'" ;; esac
  label=$(date -u +%Y%m%dT%H%M%S%3NZ)
  dir=logical/$PGBACKREST_STANZA/$db
  name=$dir/$label.pgdump$suffix
  start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  say "dumping $db to $name"
  if ! stored=$(pg_dump --format=custom --dbname="$db" | "${encrypt[@]}" | repo put "$name"); then
    repo delete "$name" >/dev/null 2>&1 || true
    die "the dump of $db failed: nothing was kept"
  fi
  stop=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  manifest=$(STORED=$stored DB=$db LABEL=$label START=$start STOP=$stop ENCRYPTED=${suffix:+1} \
    PGDUMP_VERSION="$(pg_dump --version)" python3 -c '
import json, os
stored = json.loads(os.environ["STORED"])
print(json.dumps({"database": os.environ["DB"], "label": os.environ["LABEL"], "name": stored["name"],
                  "size": stored["size"], "sha256": stored["sha256"], "format": "custom",
                  "encrypted": bool(os.environ["ENCRYPTED"]), "start": os.environ["START"],
                  "stop": os.environ["STOP"], "pg_dump": os.environ["PGDUMP_VERSION"]}, sort_keys=True))')
  printf '%s\n' "$manifest" | repo put "$dir/$label.json" >/dev/null || die "cannot store the manifest of $name"

  # Retention: the newest dumps with a manifest are kept; older ones go with their manifests.
  deleted=()
  mapfile -t labels < <(repo list "$dir" | python3 -c '
import json, sys
names = [json.loads(line)["name"] for line in sys.stdin if line.strip()]
print("\n".join(sorted(n.rsplit("/", 1)[1][:-5] for n in names if n.endswith(".json"))))')
  while [ ${#labels[@]} -gt "$retention" ]; do
    old=${labels[0]}
    labels=("${labels[@]:1}")
    for file in "$dir/$old.pgdump" "$dir/$old.pgdump.enc" "$dir/$old.json"; do
      repo delete "$file" >/dev/null 2>&1 || true
    done
    deleted+=("$old")
  done
  MANIFEST=$manifest DELETED="${deleted[*]:-}" python3 -c '
import json, os
out = json.loads(os.environ["MANIFEST"])
out["expired"] = os.environ["DELETED"].split()
print(json.dumps(out, sort_keys=True))'
done

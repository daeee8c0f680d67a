#!/usr/bin/env bash
# Restores one database from a dump of pgc-logical-backup.sh. The dump is fetched, checked against
# its manifest (SHA-256) and read by pg_restore --list before anything in the server changes.
#
#   pgc-logical-restore.sh --database=DB [--label=LABEL] [--into=TARGET]
#
#   --database  the database the dump was taken of
#   --label     a dump's label (default: the newest)
#   --into      restore into the existing database TARGET (its objects that are in the dump are
#               replaced, in one transaction); without it, DB is created again from the dump
#               (pg_restore --create): its sessions are terminated and it is renamed aside, and
#               dropped only once the new one is whole. A failed restore renames it back; a run
#               killed half-way leaves it aside, and the next run puts it back before it starts.
#
# Settings: as for pgc-logical-backup.sh; PGC_WORK_DIR holds the fetched dump (default $TMPDIR or /tmp).
# Prints one JSON line on stdout.
set -euo pipefail

die() { printf 'pgc-logical-restore: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'pgc-logical-restore: %s\n' "$*" >&2; }

here=$(cd "$(dirname "$0")" && pwd)
repo() { python3 "${PGC_REPO_TOOL:-$here/pgc-repo.py}" "$@"; }

db=''
label=''
into=''
while [ $# -gt 0 ]; do
  arg=$1
  shift
  case "$arg" in
    --*=*) name=${arg%%=*} value=${arg#*=} ;;
    --*)
      name=$arg
      [ $# -gt 0 ] || die "$arg needs a value"
      value=$1
      shift
      ;;
    *) die "unexpected argument '$arg'" ;;
  esac
  case "$name" in
    --database) db=$value ;;
    --label) label=$value ;;
    --into) into=$value ;;
    *) die "unknown option $name" ;;
  esac
done
[ -n "$db" ] || die "--database is required"
case "$db" in */* | .*) die "invalid database name '$db'" ;; esac
[ -n "${PGBACKREST_STANZA:-}" ] || die "PGBACKREST_STANZA is not set (the cluster's name)"
export PGBACKREST_CONFIG=${PGBACKREST_CONFIG:-/etc/pgbackrest/pgbackrest.conf}
dir=logical/$PGBACKREST_STANZA/$db

mapfile -t labels < <(repo list "$dir" | python3 -c '
import json, sys
names = [json.loads(line)["name"] for line in sys.stdin if line.strip()]
print("\n".join(sorted(n.rsplit("/", 1)[1][:-5] for n in names if n.endswith(".json"))))')
if [ ${#labels[@]} -eq 0 ] || [ -z "${labels[0]}" ]; then
  die "no dump of database $db in the repository"
fi
if [ -z "$label" ]; then
  label=${labels[-1]}
elif ! printf '%s\n' "${labels[@]}" | grep -qxF -- "$label"; then
  die "no dump $label of database $db in the repository (available: ${labels[*]})"
fi

work=$(mktemp -d "${PGC_WORK_DIR:-${TMPDIR:-/tmp}}/pgc-logical-restore.XXXXXX")
trap 'rm -rf "$work"' EXIT
manifest=$(repo get "$dir/$label.json") || die "cannot read the manifest of dump $label"
read -r stored encrypted sha256 < <(MANIFEST=$manifest python3 -c '
import json, os
m = json.loads(os.environ["MANIFEST"])
print(m["name"], "1" if m.get("encrypted") else "0", m["sha256"])')
say "fetching $stored"
repo get "$stored" "$work/dump.stored" >/dev/null || die "cannot fetch $stored"
actual=$(sha256sum "$work/dump.stored" | cut -d' ' -f1)
[ "$actual" = "$sha256" ] || die "$stored does not match its manifest (SHA-256 $actual, expected $sha256): nothing was restored"
if [ "$encrypted" = 1 ]; then
  [ -n "${PGBACKREST_REPO1_CIPHER_PASS:-}" ] || die "the dump is encrypted and PGBACKREST_REPO1_CIPHER_PASS is not set"
  openssl enc -d -aes-256-cbc -pbkdf2 -iter 100000 -md sha256 -pass env:PGBACKREST_REPO1_CIPHER_PASS \
    -in "$work/dump.stored" -out "$work/dump" || die "cannot decrypt $stored (wrong passphrase?)"
  rm -f "$work/dump.stored"
else
  mv "$work/dump.stored" "$work/dump"
fi
pg_restore --list "$work/dump" >/dev/null || die "$stored is not a readable pg_dump archive: nothing was restored"

if [ -n "$into" ]; then
  exists=$(psql -X -A -t -v ON_ERROR_STOP=1 -v db="$into" -d "${PGC_MAINTENANCE_DB:-postgres}" \
    <<<"SELECT count(*) FROM pg_database WHERE datname = :'db'") || die "cannot connect to the server"
  [ "$exists" = 1 ] || die "database $into does not exist (without --into, $db is created from the dump)"
  say "restoring $label of $db into $into"
  pg_restore --clean --if-exists --single-transaction --exit-on-error --dbname="$into" "$work/dump" ||
    die "pg_restore into $into failed: the transaction was rolled back"
else
  # Aside under a name of its own (at most 63 bytes, whatever DB's length).
  aside=pgc_restore_aside_$(printf '%s' "$db" | sha256sum | cut -c1-16)
  sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 -v db="$db" -v aside="$aside" -d "${PGC_MAINTENANCE_DB:-postgres}" "$@"; }
  found=$(sql <<<"SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE datname IN (:'db', :'aside')") ||
    die "cannot connect to the server"
  if [[ " $found " == *" $aside "* ]]; then
    # An earlier run stopped half-way: what is aside is the data as it was.
    say "an earlier restore of $db stopped half-way: putting the database as it was back first"
    sql >/dev/null <<<"
      DROP DATABASE IF EXISTS :\"db\" WITH (FORCE);
      ALTER DATABASE :\"aside\" RENAME TO :\"db\";
      ALTER DATABASE :\"db\" ALLOW_CONNECTIONS true;" || die "cannot put $aside back as $db"
    found=$db
  fi
  if [[ " $found " == *" $db "* ]]; then
    say "renaming $db aside ($aside) until the restore is whole"
    sql >/dev/null <<<"
      ALTER DATABASE :\"db\" ALLOW_CONNECTIONS false;
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :'db' AND pid <> pg_backend_pid();
      ALTER DATABASE :\"db\" RENAME TO :\"aside\";" ||
      { sql >/dev/null <<<"ALTER DATABASE :\"db\" ALLOW_CONNECTIONS true" || true
        die "cannot rename $db aside (sessions came back?): nothing was changed"; }
  fi
  say "recreating $db from $label"
  if ! pg_restore --create --exit-on-error --dbname="${PGC_MAINTENANCE_DB:-postgres}" "$work/dump"; then
    if [[ " $found " == *" $db "* ]]; then
      sql >/dev/null <<<"
        DROP DATABASE IF EXISTS :\"db\" WITH (FORCE);
        ALTER DATABASE :\"aside\" RENAME TO :\"db\";
        ALTER DATABASE :\"db\" ALLOW_CONNECTIONS true;" ||
        die "pg_restore of $db failed, and $aside could not be renamed back to $db: it holds the data as it was"
      die "pg_restore of $db failed: $db is as it was"
    fi
    die "pg_restore of $db failed"
  fi
  if [[ " $found " == *" $db "* ]]; then
    sql >/dev/null <<<"DROP DATABASE :\"aside\"" || say "the restore is whole; $aside, the data as it was, is still there: drop it"
  fi
fi
DB=$db LABEL=$label INTO=${into:-$db} python3 -c '
import json, os
print(json.dumps({"database": os.environ["DB"], "label": os.environ["LABEL"], "restored_into": os.environ["INTO"]},
                 sort_keys=True))'

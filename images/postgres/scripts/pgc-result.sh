# Sourced by the scripts that end with one JSON line, a Job's result (pgc-drill.sh, pgc-upgrade.sh).
# shellcheck shell=bash

# pgc_result JSON [REASON [MAX]]: print the JSON object as one line, with REASON (when given) added
# as one short line of at most MAX characters (default 380: the operator puts it in status and an
# Event), on stdout and in PGC_RESULT_FILE (the Job's termination message) when that is set.
pgc_result() {
  local line
  line=$(RESULT_JSON=$1 REASON=${2:-} MAX=${3:-380} python3 -c '
import json, os
e = os.environ
result = json.loads(e["RESULT_JSON"])
reason = " ".join(e["REASON"].split())
if reason:
    n = int(e["MAX"])
    result["reason"] = reason if len(reason) <= n else reason[:n - 3] + "..."
print(json.dumps(result, sort_keys=True))') || return 1
  printf '%s\n' "$line"
  if [ -n "${PGC_RESULT_FILE:-}" ]; then
    printf '%s\n' "$line" >"$PGC_RESULT_FILE" ||
      printf '%s: cannot write the result to %s\n' "${0##*/}" "$PGC_RESULT_FILE" >&2
  fi
}

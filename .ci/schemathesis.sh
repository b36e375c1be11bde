#!/usr/bin/env bash
# schemathesis against the live gateway: `groupsctl up` (a private PostgreSQL, gRPC server and
# gateway in one process, rate limits off) in a temporary directory, seeded with memberships,
# then every operation of the OpenAPI document the gateway serves at /openapi.json, with the
# demo owner's key: every answer must be described by the document, and none may be a 5xx.
# A bounded number of examples per operation and a time limit per run; any failure fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-50}
RUN_TIME_LIMIT=${SCHEMATHESIS_RUN_TIME_LIMIT:-150} # seconds, for each of the two runs
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# schemathesis in a virtualenv of its own, kept between runs. Debian's python3 needs the
# python3-venv package for `python3 -m venv`.
venv="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/groups-ci/schemathesis-$SCHEMATHESIS_VERSION"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

. .ci/lib-up.sh
# Rate limit and failed-authentication throttle off: every generated request reaches the checks.
start_up --rate-limit 0 --auth-failure-limit 0
work=$WORK rest=$REST key=$KEY database_url=$DATABASE_URL groupsctl=$GROUPSCTL

# Aliases (`/v1/...`, no trailing slash) run the canonical route's handler, and HEAD and OPTIONS
# its checks: fewer generated examples each keep both runs within their time with 59 operations.
cat >"$work/aliases.toml" <<'TOML'
[[operations]]
include-path-regex = '^/v1/|^/v1\.1/.*[^/]$'
generation.max-examples = 10

[[operations]]
include-method-regex = '(?i)^(head|options)$'
generation.max-examples = 10
TOML

# Memberships for the removals to find: groups x users, every user in every group.
DATABASE_URL="$database_url" "$groupsctl" seed demo --groups 20 --users 50 >"$work/seed.json"
# For the second run: instance "demo", and ids drawn mostly from those that exist there, in the
# paths (both removal sides, the reads) and in the audit listing's filters.
python3 - "$work/seed.json" >"$work/demo.toml" <<'PY'
import json, sys
seed = json.load(open(sys.argv[1]))
groups = list(range(1, seed["groups"][1] + 1))
users = list(range(1, seed["users"][1] + 1))
print('[parameters]\ninstance = "demo"')
print('group_id = { dictionary = "groups", probability = 0.8 }')
print('user_id = { dictionary = "users", probability = 0.8 }')
print('"query.group" = { dictionary = "groups", probability = 0.8 }')
print('"query.user" = { dictionary = "users", probability = 0.8 }')
print(f"[dictionaries.groups]\nvalues = {groups}")
print(f"[dictionaries.users]\nvalues = {users}")
PY
cat "$work/aliases.toml" >>"$work/demo.toml"

# Prints what a run did from its NDJSON report: cases, checks by name, statuses answered, and
# the statuses of each operation (its aliases, /v1/ and without the slash, counted with it).
summarize() {
  python3 - "$1" "$2" <<'PY'
import collections, json, re, sys
label, path = sys.argv[1], sys.argv[2]
cases, checks, failed, statuses = 0, collections.Counter(), 0, collections.Counter()
by_operation = collections.defaultdict(collections.Counter)
with open(path) as events:
    for line in events:
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        method, _, route = recorder["label"].partition(" ")
        route = re.sub(r"^/v1(\.1)?/", "/", route).rstrip("/") or "/"
        cases += len(recorder.get("cases", {}))
        for results in recorder.get("checks", {}).values():
            for check in results:
                checks[check["name"]] += 1
                failed += check["status"] != "success"
        for interaction in recorder.get("interactions", {}).values():
            response = interaction.get("response") or {}
            status = response.get("status_code", "none")
            statuses[status] += 1
            by_operation[(route, method)][status] += 1
total = sum(checks.values())
count = lambda counter: ", ".join(f"{s}: {n}" for s, n in sorted(counter.items(), key=str))
print(f"schemathesis {label}: {cases} cases, {total} checks ({failed} failed)")
for name, n in sorted(checks.items()):
    print(f"  {name}: {n}")
print("  answers by status: " + count(statuses))
for (route, method), answered in sorted(by_operation.items()):
    print(f"  {method} {route}: {count(answered)}")
PY
}

# One run; its exit status is the script's unless a later step fails first.
run() {
  local label=$1
  shift
  local report="$work/$label.ndjson"
  local status=0
  timeout "$RUN_TIME_LIMIT" "$venv/bin/st" "$@" --url "$rest" \
    --header "X-API-KEY: $key" --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" \
    --phases examples,coverage,fuzzing --request-timeout 15 --wait-for-schema 30 \
    --report ndjson --report-ndjson-path "$report" || status=$?
  if [ -s "$report" ]; then summarize "$label" "$report"; fi
  if [ "$status" -eq 124 ]; then echo "schemathesis $label: over ${RUN_TIME_LIMIT} s" >&2; fi
  return "$status"
}

started=$SECONDS
cd "$work"
# Every operation, every parameter generated (most instance names do not exist: 404s).
run all-operations --config-file "$work/aliases.toml" run "$rest/openapi.json"
# The API's operations on the seeded instance, so that generated ids reach every check: both
# removal sides (204 until the memberships run out), the reads (200 with the user's groups) and
# the audit listing of those removals. OPTIONS and the health routes take no ids.
run seeded-ids-on-demo --config-file "$work/demo.toml" run "$rest/openapi.json" \
  --exclude-method OPTIONS --exclude-tag operations
echo "schemathesis: passed in $((SECONDS - started)) s"

#!/usr/bin/env bash
# Run the seed page's Python example, unchanged, with the vendor SDK (syncano 5.4.6) against a
# REST base URL, and report what happened.
#
#   check.sh --base URL --key KEY --instance NAME --user ID --group ID
#            [--ending 1|2|page|read]   default 1 (see example.py)
#            [--expect EXPECT] [--at get_user|get_group|ending1|ending2]
#            [--detail TEXT] [--name LABEL] [--timeout SECONDS] [--json]
#
# EXPECT is `ok`, or EXC[:STATUS[:REASON]] matched against what the SDK raised, e.g.
#   SyncanoRequestError:403:No such API Key.     UserNotFound:404      UserDoesNotExist
#   '*:404' (any exception with status_code 404). EXC also matches a base class name.
# --at checks on which line of the page the exception was raised.
# --detail checks the "detail" of the last HTTP response's JSON body (e.g. to tell
#   {"detail":"Instance was not found."} from {"detail":"Not found"}; the SDK hides it for the
#   GETs' 404s, which all become <Model>DoesNotExist).
# Without --expect, success of the executed text = PASS.
#
# Output: one line `PASS|FAIL <name>: ...` on stdout (+ the example's JSON with --json, or
# always on FAIL); exit 0 on PASS, 1 on FAIL, 2 on usage/setup errors.
#
# The host reaches the SDK only through SYNCANO_APIROOT (read by `import syncano`); the key
# is passed to example.py in the environment, never on a command line, and never printed.
# The venv comes from setup.sh (built on first use; set SYNCANO_SDK_PYTHON to skip that).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

BASE= KEY= INSTANCE= USER_ID= GROUP_ID= ENDING=1 EXPECT= AT= DETAIL= NAME= TIMEOUT=90 SHOWJSON=0
usage() { sed -n '2,22p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --base) BASE="$2"; shift 2;;
    --key) KEY="$2"; shift 2;;
    --key-env) KEY="${!2}"; shift 2;;          # read the key from the named env variable
    --instance) INSTANCE="$2"; shift 2;;
    --user) USER_ID="$2"; shift 2;;
    --group) GROUP_ID="$2"; shift 2;;
    --ending) ENDING="$2"; shift 2;;
    --expect) EXPECT="$2"; shift 2;;
    --at) AT="$2"; shift 2;;
    --detail) DETAIL="$2"; shift 2;;
    --name) NAME="$2"; shift 2;;
    --timeout) TIMEOUT="$2"; shift 2;;
    --json) SHOWJSON=1; shift;;
    -h|--help) usage;;
    *) echo "check.sh: unknown argument $1" >&2; usage;;
  esac
done
for v in BASE KEY INSTANCE USER_ID GROUP_ID; do
  [ -n "${!v}" ] || { echo "check.sh: missing --$(echo "$v" | tr 'A-Z_' 'a-z-' | sed 's/-id$//')" >&2; exit 2; }
done
NAME="${NAME:-ending $ENDING on user $USER_ID / group $GROUP_ID}"

PY="${SYNCANO_SDK_PYTHON:-}"
if [ -z "$PY" ]; then
  PY="$("$HERE/setup.sh" 2>/dev/null | tail -n1)" || { echo "check.sh: setup.sh failed" >&2; exit 2; }
fi

# The SDK joins paths onto the root with urljoin(): a root with a path prefix must end in '/'
# (else the prefix is silently dropped), so always add one.
case "$BASE" in */) ;; *) BASE="$BASE/";; esac

# requests honours *_PROXY; keep a local gateway off any proxy.
host="$(printf '%s' "$BASE" | sed -E 's#^[a-zA-Z]+://(\[[^]]*\]|[^/:]*).*#\1#')"
case "$host" in
  localhost|127.*|\[::1\]) export NO_PROXY="${NO_PROXY:+$NO_PROXY,}$host" no_proxy="${no_proxy:+$no_proxy,}$host";;
esac

# Only SYNCANO_APIROOT may steer the SDK: SYNCANO_LOGLEVEL=debug would log the key (and turn
# off TLS verification), SYNCANO_APIKEY/EMAIL/PASSWORD/INSTANCE are defaults it falls back to.
set +e
OUT="$(env -u SYNCANO_LOGLEVEL -u SYNCANO_APIKEY -u SYNCANO_EMAIL -u SYNCANO_PASSWORD \
          -u SYNCANO_INSTANCE -u PYTHONPATH -u PYTHONHOME \
          SYNCANO_APIROOT="$BASE" SYNCANO_EXAMPLE_KEY="$KEY" SYNCANO_EXAMPLE_INSTANCE="$INSTANCE" \
          SYNCANO_EXAMPLE_USER_ID="$USER_ID" SYNCANO_EXAMPLE_GROUP_ID="$GROUP_ID" \
          SYNCANO_EXAMPLE_ENDING="$ENDING" PYTHONWARNINGS=ignore \
          timeout -k 5 "$TIMEOUT" "$PY" "$HERE/example.py" 2>"${TMPDIR:-/tmp}/check-sh.$$.err")"
RC=$?
set -e
ERR="$(cat "${TMPDIR:-/tmp}/check-sh.$$.err")"; rm -f "${TMPDIR:-/tmp}/check-sh.$$.err"
if [ "$RC" = 124 ] || [ "$RC" = 137 ]; then
  # e.g. the SDK retries 429 forever (it sleeps Retry-After and re-sends, with no limit)
  echo "FAIL $NAME: the SDK did not finish within ${TIMEOUT}s (endless 429 retries? hung gateway?)"
  exit 1
fi
LAST="$(printf '%s\n' "$OUT" | tail -n1)"

VERDICT="$(EXPECT="$EXPECT" AT="$AT" DETAIL="$DETAIL" RESULT="$LAST" RC="$RC" python3 - <<'PY'
import json, os
exp, at, rc = os.environ["EXPECT"], os.environ["AT"], int(os.environ["RC"])
want_detail = os.environ["DETAIL"]
try:
    r = json.loads(os.environ["RESULT"])
except Exception:
    print("FAIL no JSON from example.py (rc=%d)" % rc); raise SystemExit
if "usage_error" in r:
    print("FAIL usage: " + r["usage_error"]); raise SystemExit
lines = {"user = User.please.get(id=USER_ID)": "get_user",
         "group = Group.please.get(id=GROUP_ID)": "get_group",
         "user.remove_from_group(group_id=group.id)": "ending1",
         "group.delete_user(user_id=user.id)": "ending2"}
step = lines.get(r.get("failed_line"), r.get("failed_line") or "-")
got = "ok" if r.get("ok") else "%s:%s:%s" % (r.get("exception"), r.get("status_code"), r.get("reason"))
def match():
    if not exp:
        return r.get("ok")
    if exp == "ok":
        return r.get("ok")
    if r.get("ok"):
        return False
    parts = exp.split(":", 2)
    names = [r.get("exception")] + r.get("exception_bases", [])
    if parts[0] not in ("*", "") and parts[0] not in names:
        return False
    if len(parts) > 1 and parts[1] and str(r.get("status_code")) != parts[1]:
        return False
    if len(parts) > 2 and parts[2] != r.get("reason"):
        return False
    return True
detail = None
if r.get("http"):
    try:
        detail = json.loads(r["http"][-1]["body"]).get("detail")
    except Exception:
        pass
ok = match() and (not at or r.get("ok") or step == at) and (not want_detail or detail == want_detail)
print("%s got %s%s%s (expected %s%s%s)" % ("PASS" if ok else "FAIL", got,
      "" if r.get("ok") else " at " + step, " detail=%r" % detail if want_detail else "",
      exp or "ok", " at " + at if at else "", " detail=%r" % want_detail if want_detail else ""))
PY
)"
echo "${VERDICT%% *} $NAME: ${VERDICT#* }"
if [ "$SHOWJSON" = 1 ] || [ "${VERDICT%% *}" != PASS ]; then
  printf '%s\n' "$LAST"
  if [ "${VERDICT%% *}" != PASS ] && [ -n "$ERR" ]; then printf '%s\n' "$ERR" | tail -n 15 >&2; fi
fi
[ "${VERDICT%% *}" = PASS ]

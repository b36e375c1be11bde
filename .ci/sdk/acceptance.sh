#!/usr/bin/env bash
# Acceptance of the REST side: the seed page's Python example, run unchanged with the vendor
# SDK (syncano 5.4.6, see setup.sh / example.py / check.sh), against a running gateway.
#
#   acceptance.sh --base http://127.0.0.1:8080 [--groupsctl PATH]   # real: data via groupsctl,
#                                                                   # needs DATABASE_URL
#   acceptance.sh --mock http://127.0.0.1:18080                     # harness self-test against
#                                                                   # mock_gateway.py
# Options: --only SUBSTRING (run matching scenarios), --timeout S (per SDK run, default 90).
#
# Every removal scenario uses a fresh membership (a new user and a new group, so runs never
# interfere and need no cleanup); the instance, admins and keys are created once per run with a
# unique suffix. Prints PASS/FAIL per check and a summary; exit 0 iff all passed.
#
# SCENARIOS (E = ending 1 `user.remove_from_group(...)` or 2 `group.delete_user(...)`; the
# page's two endings are alternatives, so each runs on its own membership):
#   S1  owner, E1, member             -> ok; repeat -> SyncanoRequestError 404 "Not found" at E1
#   S2  owner, E2, member             -> ok; repeat -> UserNotFound 404 "User not found." at E2
#   S3  write-role admin, E1 / E2     -> ok; repeat -> as S1 / S2
#   S4  full-role admin, E1 / E2      -> ok; repeat -> as S1 / S2
#   S5  read-role admin, E1 / E2      -> both GETs succeed, the removal raises
#                                        SyncanoRequestError 403 "You do not have permission to
#                                        perform this action." (E2: not UserNotFound, 403 is
#                                        re-raised as is); then the owner removes the same
#                                        membership -> ok (the 403 removed nothing)
#   S6  unknown key (even / odd last digit), E1 -> SyncanoRequestError 403 "No such API Key."
#                                        at the first GET (User.please.get)
#   S7  missing user id               -> UserDoesNotExist ("<id> not found.") at the user GET
#       (after a control: both GETs of existing objects answer 200, since an unknown route's
#        404 would raise the same DoesNotExist; the 404's detail is checked too)
#       missing group id              -> GroupDoesNotExist at the group GET
#       deleted group                 -> GroupDoesNotExist at the group GET
#       unknown instance              -> UserDoesNotExist (the SDK maps every 404 of a GET)
#   S8  the page verbatim (both endings, one membership) -> E1 ok, then E2 raises
#                                        UserNotFound 404 (the membership is gone)
#   S9  user and group exist, not a member: E1 -> SyncanoRequestError 404 "Not found";
#                                           E2 -> UserNotFound 404
#   S10 instance name in upper case, E1 -> ok (names are case-insensitive)
#   S11 admin deactivated             -> 403 "No such API Key." at the user GET
#       admin with no role on it      -> 403 "You do not have permission..." at the user GET
#   S12 instance API keys (outside the page's ACCOUNT_KEY, informative):
#       ignore_acl key, E1            -> reads ok, removal 403 "You do not have permission..."
#       plain key                     -> 403 "You do not have permission..." at the user GET
#       revoked key                   -> 403 "No such API Key." at the user GET
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

MODE= BASE= GROUPSCTL="${GROUPSCTL:-groupsctl}" ONLY= TIMEOUT=90
while [ $# -gt 0 ]; do
  case "$1" in
    --base) MODE=real; BASE="$2"; shift 2;;
    --mock) MODE=mock; BASE="$2"; shift 2;;
    --groupsctl) GROUPSCTL="$2"; shift 2;;
    --only) ONLY="$2"; shift 2;;
    --timeout) TIMEOUT="$2"; shift 2;;
    *) sed -n '2,12p' "$0" >&2; exit 2;;
  esac
done
[ -n "$MODE" ] || { sed -n '2,12p' "$0" >&2; exit 2; }
BASE="${BASE%/}"

export SYNCANO_SDK_PYTHON
SYNCANO_SDK_PYTHON="$("$HERE/setup.sh" | tail -n1)" || { echo "setup.sh failed" >&2; exit 2; }

PASS=0 FAIL=0 SKIP=0
FAILED=()
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
randhex() { python3 -c 'import secrets,sys; k=secrets.token_hex(20)[:39]; print(k + sys.argv[1])' "$1"; }

# check NAME KEYVAR USER GROUP ENDING EXPECT [AT] [INSTANCE] [DETAIL]
check() {
  local name="$1" keyvar="$2" u="$3" g="$4" e="$5" exp="$6" at="${7:-}" inst="${8:-$INSTANCE}" det="${9:-}"
  if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then return 0; fi
  local args=(--base "$BASE" --key-env "$keyvar" --instance "$inst" --user "$u" --group "$g"
              --ending "$e" --expect "$exp" --name "$name" --timeout "$TIMEOUT")
  [ -n "$at" ] && args+=(--at "$at")
  [ -n "$det" ] && args+=(--detail "$det")
  if "$HERE/check.sh" "${args[@]}"; then PASS=$((PASS+1)); else FAIL=$((FAIL+1)); FAILED+=("$name"); fi
}
skip() { if [ -z "$ONLY" ] || [[ "$1" == *"$ONLY"* ]]; then echo "SKIP $1: $2"; SKIP=$((SKIP+1)); fi; }

NO_PERM="You do not have permission to perform this action."
BAD_KEY="No such API Key."

# ---------------------------------------------------------------- providers
if [ "$MODE" = real ]; then
  command -v "$GROUPSCTL" >/dev/null || { echo "groupsctl not found (--groupsctl PATH)" >&2; exit 2; }
  [ -n "${DATABASE_URL:-}" ] || { echo "DATABASE_URL is not set" >&2; exit 2; }
  SUF="$(date +%s)$RANDOM"
  INSTANCE="sdkacc-$SUF"
  ctl() { "$GROUPSCTL" "$@"; }
  mkadmin() { ctl admin create "$1-$SUF@sdk-acceptance.test" | jget key; }
  export K_OWNER K_WRITE K_FULL K_READ K_OUTSIDER K_INACTIVE K_ACL K_PLAIN K_REVOKED K_UNKNOWN_EVEN K_UNKNOWN_ODD
  K_OWNER="$(mkadmin owner)" || exit 2
  ctl instance create "$INSTANCE" --owner "owner-$SUF@sdk-acceptance.test" >/dev/null || exit 2
  for r in write full read; do
    k="$(mkadmin "$r")" || exit 2
    ctl admin grant "$r-$SUF@sdk-acceptance.test" "$INSTANCE" "$r" >/dev/null || exit 2
    case "$r" in write) K_WRITE="$k";; full) K_FULL="$k";; read) K_READ="$k";; esac
  done
  K_OUTSIDER="$(mkadmin outsider)" || exit 2
  K_INACTIVE="$(mkadmin inactive)" || exit 2
  ctl admin grant "inactive-$SUF@sdk-acceptance.test" "$INSTANCE" write >/dev/null || exit 2
  ctl admin deactivate "inactive-$SUF@sdk-acceptance.test" >/dev/null || exit 2
  K_ACL="$(ctl apikey create "$INSTANCE" --ignore-acl | jget key)" || exit 2
  K_PLAIN="$(ctl apikey create "$INSTANCE" | jget key)" || exit 2
  out="$(ctl apikey create "$INSTANCE")" || exit 2
  K_REVOKED="$(printf '%s' "$out" | jget key)"
  ctl apikey revoke "$INSTANCE" "$(printf '%s' "$out" | jget id)" >/dev/null || exit 2
  N=0
  newpair() {   # sets U G to a fresh membership (with "no": a user and a group, not linked)
    N=$((N+1))
    U="$(ctl user create "$INSTANCE" "u$N-$SUF" | jget id)" || return 1
    G="$(ctl group create "$INSTANCE" "g$N-$SUF" | jget id)" || return 1
    [ "${1:-}" = no ] || ctl member add "$INSTANCE" "$G" "$U" >/dev/null || return 1
  }
  deletedgroup() { newpair || return 1; ctl group delete "$INSTANCE" "$G" >/dev/null; }
  MISSING_ID=9223372036854775807
  echo "instance $INSTANCE at $BASE"
else
  INSTANCE=demo
  export K_OWNER="$(printf '0%.0s' {1..39})2" K_WRITE="$(printf '1%.0s' {1..39})4" \
         K_READ="$(printf '2%.0s' {1..39})6" K_FULL="$(printf '3%.0s' {1..39})8"
  export K_UNKNOWN_EVEN K_UNKNOWN_ODD
  curl -fsS -X POST "$BASE/__mock/reset" >/dev/null || { echo "mock not reachable at $BASE" >&2; exit 2; }
  newpair() {
    curl -fsS -X POST "$BASE/__mock/reset" >/dev/null
    if [ "${1:-}" = no ]; then
      curl -fsS -o /dev/null -X DELETE -H "X-API-KEY: $K_OWNER" "$BASE/v1.1/instances/demo/groups/3/users/7/"
    fi
    U=7 G=3
  }
  deletedgroup() { return 1; }
  MISSING_ID=99
fi
K_UNKNOWN_EVEN="$(randhex e)"; K_UNKNOWN_ODD="$(randhex f)"

pair() { newpair "$@" || { echo "provisioning failed" >&2; exit 2; }; }

# ---------------------------------------------------------------- scenarios
for who in OWNER WRITE FULL; do
  pair; check "S-$who-E1 $who removes via user.remove_from_group" "K_$who" "$U" "$G" 1 ok
        check "S-$who-E1-repeat same again -> 404" "K_$who" "$U" "$G" 1 "SyncanoRequestError:404:Not found" ending1
  pair; check "S-$who-E2 $who removes via group.delete_user" "K_$who" "$U" "$G" 2 ok
        check "S-$who-E2-repeat same again -> UserNotFound" "K_$who" "$U" "$G" 2 "UserNotFound:404:User not found." ending2 "" "Not found"
done

for e in 1 2; do
  pair; check "S5-READ-E$e read-role admin: reads ok, removal 403" K_READ "$U" "$G" "$e" "SyncanoRequestError:403:$NO_PERM" "ending$e"
        check "S5-READ-E$e-after owner still finds the membership" K_OWNER "$U" "$G" "$e" ok
done

pair
check "S6-UNKNOWN-KEY-even 403 No such API Key." K_UNKNOWN_EVEN "$U" "$G" 1 "SyncanoRequestError:403:$BAD_KEY" get_user
check "S6-UNKNOWN-KEY-odd 403 No such API Key." K_UNKNOWN_ODD "$U" "$G" 1 "SyncanoRequestError:403:$BAD_KEY" get_user
check "S6-UNKNOWN-KEY-after the membership is intact" K_OWNER "$U" "$G" 1 ok

pair
# an unknown route also answers 404 {"detail":"Not found"}, which the SDK turns into the same
# DoesNotExist: the control proves the GET routes exist before the missing-object checks count
check "S7-CONTROL both GETs of existing objects answer 200" K_OWNER "$U" "$G" read ok
check "S7-MISSING-USER UserDoesNotExist" K_OWNER "$MISSING_ID" "$G" 1 "UserDoesNotExist" get_user "" "Not found"
check "S7-MISSING-GROUP GroupDoesNotExist" K_OWNER "$U" "$MISSING_ID" 1 "GroupDoesNotExist" get_group "" "Not found"
check "S7-UNKNOWN-INSTANCE UserDoesNotExist" K_OWNER "$U" "$G" 1 "UserDoesNotExist" get_user "no-such-instance-$RANDOM" "Instance was not found."
if deletedgroup; then
  check "S7-DELETED-GROUP GroupDoesNotExist" K_OWNER "$U" "$G" 1 "GroupDoesNotExist" get_group "" "Not found"
else
  skip "S7-DELETED-GROUP" "provider cannot delete groups"
fi

pair; check "S8-PAGE the page verbatim: E1 ok then E2 UserNotFound" K_OWNER "$U" "$G" page "UserNotFound:404:User not found." ending2 "" "Not found"
pair no
check "S9-NOT-MEMBER-E1 404 Not found" K_OWNER "$U" "$G" 1 "SyncanoRequestError:404:Not found" ending1
check "S9-NOT-MEMBER-E2 UserNotFound" K_OWNER "$U" "$G" 2 "UserNotFound:404:User not found." ending2 "" "Not found"
pair; check "S10-UPPERCASE-INSTANCE ok" K_OWNER "$U" "$G" 1 ok "" "$(printf '%s' "$INSTANCE" | tr a-z A-Z)"

if [ "$MODE" = real ]; then
  pair
  check "S11-INACTIVE-ADMIN 403 No such API Key." K_INACTIVE "$U" "$G" 1 "SyncanoRequestError:403:$BAD_KEY" get_user
  check "S11-NO-ROLE-ADMIN 403 no permission" K_OUTSIDER "$U" "$G" 1 "SyncanoRequestError:403:$NO_PERM" get_user
  check "S12-APIKEY-IGNORE-ACL reads ok, removal 403" K_ACL "$U" "$G" 1 "SyncanoRequestError:403:$NO_PERM" ending1
  check "S12-APIKEY-PLAIN user GET 403" K_PLAIN "$U" "$G" 1 "SyncanoRequestError:403:$NO_PERM" get_user
  check "S12-APIKEY-REVOKED 403 No such API Key." K_REVOKED "$U" "$G" 1 "SyncanoRequestError:403:$BAD_KEY" get_user
  check "S12-after the membership is intact" K_OWNER "$U" "$G" 2 ok
else
  skip "S11/S12" "mock has no such keys"
fi

echo "== $PASS passed, $FAIL failed, $SKIP skipped"
for f in "${FAILED[@]}"; do echo "   FAILED: $f"; done
[ "$FAIL" = 0 ]

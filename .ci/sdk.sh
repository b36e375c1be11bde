#!/usr/bin/env bash
# The REST side's acceptance: the seed page's Python example, run unchanged with the vendor's
# SDK (PyPI syncano 5.4.6, in a Python 3.6 virtualenv: see sdk/setup.sh), against
# `groupsctl up`, both endings, as owner, write and full admins (then a repeat is 404), a read
# admin (reads, 403 on both removals), unknown keys (403 "No such API Key."), missing objects
# (the SDK's DoesNotExist), and more: the scenario list is in sdk/acceptance.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/lib-up.sh

# The example runs as the seed page has it (checked against the page where it is at hand).
seed=../shared/seed/groups-users-delete.txt
if [ -f "$seed" ]; then python3 .ci/sdk/example.py --self-check "$seed" >/dev/null; fi
start_up
started=$SECONDS
GROUPSCTL="$GROUPSCTL" bash .ci/sdk/acceptance.sh --base "$REST"
echo "sdk: passed in $((SECONDS - started)) s"

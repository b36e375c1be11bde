#!/usr/bin/env bash
# Reproducible, idempotent installer for the vendor SDK used by the seed example
# (PyPI `syncano` 5.4.6) in a Python 3.6 venv.
#
#   setup.sh [VENV_DIR]      default: $SYNCANO_SDK_VENV or ~/.cache/groups-ci/syncano-5.4.6
#
# Env:
#   SYNCANO_PY36   python 3.6 interpreter to use (default: newest ~/.pyenv/versions/3.6.*,
#                  else python3.6 on PATH)
#   FORCE=1        rebuild even if the venv is already good
#
# Prints the venv's python path on the last line of stdout. Safe to run concurrently
# (flock) and repeatedly (a stamp + a live self-test decide whether anything is done).
#
# Why this recipe (see requirements-syncano-5.4.6.txt for the details):
#   * syncano 5.4.6 pins requests==2.7.0, whose vendored urllib3 uses collections.Mapping
#     etc. -> needs Python < 3.10; 3.6 is the SDK's era and what we pin.
#   * it also pins pyOpenSSL==0.15.1 (+ ndg-httpsclient, pyasn1): with any cryptography pip
#     can get today `import requests` crashes, so we install with --no-deps and list the
#     real runtime deps explicitly, all pinned by version AND sha256 (--require-hashes).
#   * python-slugify 0.1.0 and syncano are sdists built with setup.py: python-slugify uses
#     `use_2to3`, which setuptools >= 58 rejects. The setuptools that 3.6.15's ensurepip puts
#     in the venv (40.6.2) builds them; so never upgrade pip/setuptools in this venv (on a
#     3.9 venv with setuptools 58+ the install fails for exactly this reason).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQ="$HERE/requirements-syncano-5.4.6.txt"
VENV="${1:-${SYNCANO_SDK_VENV:-$HOME/.cache/groups-ci/syncano-5.4.6}}"

log() { echo "setup.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -f "$REQ" ] || die "missing $REQ"

find_py36() {
  if [ -n "${SYNCANO_PY36:-}" ]; then echo "$SYNCANO_PY36"; return; fi
  local c
  for c in $(ls -d "$HOME"/.pyenv/versions/3.6.* 2>/dev/null | sort -V -r); do
    if [ -x "$c/bin/python3.6" ]; then echo "$c/bin/python3.6"; return; fi
  done
  if command -v python3.6 >/dev/null 2>&1; then command -v python3.6; return; fi
  return 1
}
PY36="$(find_py36)" || die "no Python 3.6 found (set SYNCANO_PY36, or: pyenv install 3.6.15)"
"$PY36" -c 'import sys; assert sys.version_info[:2] == (3, 6), sys.version' \
  || die "$PY36 is not Python 3.6"
"$PY36" -c 'import venv, ssl, ensurepip' || die "$PY36 lacks venv/ssl/ensurepip"

# What makes a venv "good": same interpreter, same requirements, and the self-test passes.
STAMP_WANT="$("$PY36" -c 'import sys; print(sys.version.split()[0])') $(sha256sum "$REQ" | cut -d' ' -f1)"

selftest() {  # $1 = venv python
  "$1" - <<'PY'
import importlib, sys, warnings
warnings.simplefilter("ignore")
assert sys.version_info[:2] == (3, 6), sys.version
import requests, six, syncano
from syncano.models import Group, User
from syncano.connection import Connection
assert syncano.__version__ == "5.4.6", syncano.__version__
assert requests.__version__ == "2.7.0", requests.__version__
for bad in ("OpenSSL", "ndg"):           # must stay absent, see requirements file
    try:
        importlib.import_module(bad)
    except ImportError:
        pass
    else:
        raise SystemExit("%s is importable: requests would inject pyOpenSSL" % bad)
c = Connection(host="http://127.0.0.1:9/", api_key="k", instance_name="i")
assert c.build_url("/v1.1/instances/i/users/7") == "http://127.0.0.1:9/v1.1/instances/i/users/7/"
assert c.build_params({})["headers"] == {"content-type": "application/json",
                                         "Authorization": "token k"}
assert callable(User.remove_from_group) and callable(Group.delete_user)
print("ok syncano %s requests %s python %s" % (syncano.__version__, requests.__version__,
                                              sys.version.split()[0]))
PY
}

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [ "${FORCE:-0}" != 1 ] && [ -x "$VENV/bin/python" ] && [ -f "$VENV/.groups-ci-stamp" ] \
   && [ "$(cat "$VENV/.groups-ci-stamp")" = "$STAMP_WANT" ] && selftest "$VENV/bin/python" >&2; then
  log "up to date: $VENV"
  echo "$VENV/bin/python"
  exit 0
fi

[ -e "$VENV" ] && log "existing venv is stale or fails the self-test (output above): rebuilding"
log "building $VENV with $PY36"
rm -rf "$VENV"
"$PY36" -m venv "$VENV"
# No pip/setuptools upgrade: the pip bundled with 3.6.15 (18.1) does --no-deps
# --require-hashes fine, setuptools >= 58 could not build python-slugify 0.1.0, and an upgrade
# would be an unpinned download.
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
  "$VENV/bin/python" -m pip install --no-deps --require-hashes --no-compile -r "$REQ" >&2
selftest "$VENV/bin/python" >&2 || die "self-test failed in $VENV"
echo "$STAMP_WANT" > "$VENV/.groups-ci-stamp"
log "ready: $VENV"
echo "$VENV/bin/python"

# Sourced by CI scripts: start `groupsctl up` (debug build, a private PostgreSQL in a temporary
# directory, ports picked by the kernel) and stop it on exit.
#
#   start_up [extra flags of `up`...]
# sets: WORK (temporary directory), UP_PID, REST (http://ADDR), GRPC (ADDR), KEY (the demo
# owner's key), DATABASE_URL (of the private database), GROUPSCTL (the binary).

GROUPSCTL=$PWD/target/debug/groupsctl
UP_PID=
WORK=

stop_up() {
  if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
    kill -TERM "$UP_PID"
    wait "$UP_PID" || true
  fi
  [ -z "$WORK" ] || rm -rf "$WORK"
}

start_up() {
  cargo build --quiet --bin groupsctl
  WORK=$(mktemp -d)
  # As root, `up` runs PostgreSQL as the postgres user, who must reach the data directory.
  chmod 755 "$WORK"
  trap stop_up EXIT
  # Settings of a developer's shell must not redirect `up` (to another database or port).
  env -u DATABASE_URL -u GROUPS_DATA_DIR -u GROUPS_GATEWAY_LISTEN -u GROUPS_SERVER_LISTEN \
    -u GROUPS_RATE_LIMIT \
    "$GROUPSCTL" up --data-dir "$WORK/data" --rest-listen 127.0.0.1:0 --grpc-listen 127.0.0.1:0 \
    "$@" >"$WORK/up.json" 2>"$WORK/up.log" &
  UP_PID=$!
  for _ in $(seq 1 240); do
    [ -s "$WORK/up.json" ] && break
    if ! kill -0 "$UP_PID" 2>/dev/null; then
      echo "groupsctl up exited before serving:" >&2
      cat "$WORK/up.log" >&2
      return 1
    fi
    sleep 0.25
  done
  if [ ! -s "$WORK/up.json" ]; then
    echo "groupsctl up did not start within 60 s:" >&2
    cat "$WORK/up.log" >&2
    return 1
  fi
  read -r REST GRPC KEY DATABASE_URL < <(python3 -c '
import json, sys
up = json.load(sys.stdin)
print(up["rest"], up["grpc"], up["key"], up["database_url"])' <"$WORK/up.json")
  export DATABASE_URL
}

#!/usr/bin/env bash
# The docker-compose deployment, run for real on a machine that reaches Debian's archive but no
# container registry (the "air-gapped build"):
#  - installs Debian's docker.io and debootstrap, and compose v2 (the plugin from the next Debian
#    release's docker-compose package: bookworm's docker-compose 1.29 rejects docker-compose.yml's
#    top-level `name`, a v2 key), and starts a private dockerd (its own data root and socket, no
#    default bridge, no iptables rules), stopped at the end;
#  - builds the images here: a Debian base from debootstrap (cached for a week), a stand-in for
#    postgres:15 (.ci/postgres), and the groups image from the Dockerfile's runtime stage fed
#    with release binaries built on the host (the builder stage needs the rust image), cargo
#    running while the Debian images are made;
#  - runs docker-compose.yml unchanged with .ci/compose.airgap.yml (which only points it at these
#    images) and checks it as an operator would: the README's compose commands, command for
#    command; health; migrations; REST and gRPC from the host; the read routes; JSON logs;
#    metrics; down and up with the data kept; a server restart under load with no lost answer.
# Every container, volume, image, network and the daemon go away on exit, failed or not.
# COMPOSE_SKIP_READS=1 skips the read routes (for branches that do not serve them yet).
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=/usr/bin/docker # Debian's client: another `docker` may come first on PATH
cache="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/groups-ci"
mirror=http://deb.debian.org/debian
work=$(mktemp -d "${TMPDIR:-/tmp}/groups-compose.XXXXXX")
# The groups image's build context (made below), named in .ci/compose.airgap.yml.
export GROUPS_AIRGAP_CONTEXT="$work/groups-image"
dockerd_pid=
load_pid=
cargo_pid=

fail() {
  echo "compose.sh: FAIL: $*" >&2
  exit 1
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Each phase's wall time, printed at the end (also after a failure).
timings=()
phase_name=
phase_started=
now() { date +%s.%N; }
phase_end() {
  [ -n "$phase_name" ] || return 0
  local seconds
  seconds=$(awk -v a="$phase_started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  timings+=("$(printf '%7s s  %s%s' "$seconds" "$phase_name" "${1:-}")")
  echo "   ($phase_name: $seconds s)"
  phase_name=
}
phase() {
  phase_end
  phase_name=$1
  phase_started=$(now)
  echo "== compose: $1"
}
started_at=$(now)

# The README's commands run as written: `docker` is Debian's client, with the compose plugin
# installed below; COMPOSE_FILE adds the air-gap override.
docker() { "$DOCKER" "$@"; }
compose() { docker compose "$@"; }
daemon_up() { [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; }

cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then phase_end " (failed)"; else phase_end; fi
  if [ -n "$load_pid" ] && kill -0 "$load_pid" 2>/dev/null; then
    kill -TERM "$load_pid"
    wait "$load_pid" 2>/dev/null
  fi
  if [ -n "$cargo_pid" ] && kill -0 "$cargo_pid" 2>/dev/null; then
    kill -TERM -- "-$cargo_pid" 2>/dev/null || kill -TERM "$cargo_pid" # cargo and its rustc jobs
    wait "$cargo_pid" 2>/dev/null
  fi
  if daemon_up; then
    if [ "$status" -ne 0 ]; then
      echo "== compose: state at the failure" >&2
      compose ps -a >&2
      compose logs --no-color --tail 40 >&2
    fi
    phase "cleanup"
    compose down --volumes --remove-orphans --rmi all --timeout 20 >/dev/null 2>&1
    "$DOCKER" image rm -f localhost/postgres:15 localhost/groups:airgap debian:bookworm-slim \
      localhost/debian:bookworm-slim >/dev/null 2>&1
    kill -TERM "$dockerd_pid"
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$dockerd_pid" 2>/dev/null; then
      echo "compose.sh: dockerd did not stop in 30 s: killing it" >&2
      kill -KILL "$dockerd_pid"
    fi
    wait "$dockerd_pid" 2>/dev/null
  fi
  # Whatever the daemon left mounted under its data root (after a crash), deepest first.
  awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m"
  done
  rm -rf "$work"
  phase_end
  echo "== compose: wall time by phase"
  printf '%s\n' "${timings[@]}"
  awk -v a="$started_at" -v b="$(now)" 'BEGIN { printf "%7.1f s  in all\n", b - a }'
  if [ "$status" -eq 0 ]; then echo "compose: passed"; else echo "compose: FAILED" >&2; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
phase "install docker.io, debootstrap, compose"
if [ ! -x "$DOCKER" ] || ! command -v dockerd >/dev/null; then apt_install docker.io; fi
command -v debootstrap >/dev/null || apt_install debootstrap
mkdir -p "$cache"
# Compose v2 is not packaged for bookworm; trixie's docker-compose package holds the v2 plugin
# (built against an older glibc than bookworm's). apt fetches it with a private configuration,
# so the system's sources stay as they are, and verifies it against the archive's signature.
compose_v2="$cache/compose-v2/docker-compose"
if ! "$compose_v2" version >/dev/null 2>&1; then
  apt_dir="$work/apt-trixie"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/deb"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
    >"$apt_dir/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
    -o Dir::State::Status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root
    -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false
    -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false)
  if apt-get "${apt_opts[@]}" update -qq >"$apt_dir/apt.log" 2>&1 &&
    (cd "$apt_dir/deb" && apt-get "${apt_opts[@]}" download docker-compose >>"$apt_dir/apt.log" 2>&1) &&
    dpkg-deb -x "$apt_dir"/deb/docker-compose_*.deb "$apt_dir/root" &&
    "$apt_dir/root/usr/libexec/docker/cli-plugins/docker-compose" version >/dev/null 2>&1; then
    mkdir -p "$(dirname "$compose_v2")"
    cp "$apt_dir/root/usr/libexec/docker/cli-plugins/docker-compose" "$compose_v2.tmp"
    mv "$compose_v2.tmp" "$compose_v2"
  else
    tail -5 "$apt_dir/apt.log" >&2
    fail "compose v2 could not be had from trixie's docker-compose package (bookworm's 1.29 cannot read docker-compose.yml)"
  fi
fi
# The client reads its plugins and settings from here: nothing from this user's ~/.docker.
export DOCKER_CONFIG="$work/docker-config"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
ln -s "$compose_v2" "$DOCKER_CONFIG/cli-plugins/docker-compose"
echo "compose: $(compose version)"

# ---------------------------------------------------------------------------------------------
# The release binaries build in the background (in a process group of their own, so that a
# failure elsewhere stops all of it) while the daemon starts and the Debian images are made.
bins=(groups-server groups-gateway groupsctl)
cargo_started=$(now)
setsid nice -n 10 cargo build --release --locked --quiet "${bins[@]/#/--bin=}" >"$work/cargo.log" 2>&1 &
cargo_pid=$!

# ---------------------------------------------------------------------------------------------
phase "start dockerd"
# A daemon of our own: data, state and socket under $work. No default bridge, no iptables rules
# and no IP forwarding (so the host is left as it was): the compose network is a bridge of its
# own, published ports go through docker-proxy, the containers need no way out, and the image
# builds use the host's network to reach Debian's archive. (So docker warns "IPv4 forwarding is
# disabled. Networking will not work." for each container: only routing beyond the host is off.)
export DOCKER_HOST="unix://$work/docker.sock"
# A developer's shell must not redirect compose to other files or another project.
unset COMPOSE_PROJECT_NAME COMPOSE_PROFILES COMPOSE_PATH_SEPARATOR DOCKER_CONTEXT DOCKER_TLS_VERIFY
export COMPOSE_FILE="docker-compose.yml:.ci/compose.airgap.yml"
# Plain output: no colours or terminal control codes in what the checks read.
export COMPOSE_ANSI=never
dockerd --exec-opt native.cgroupdriver=cgroupfs --data-root "$work/docker" \
  --exec-root "$work/run" --pidfile "$work/dockerd.pid" --host "$DOCKER_HOST" \
  --bridge none --iptables=false --ip-forward=false >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 120); do
  "$DOCKER" version >/dev/null 2>&1 && break
  daemon_up || { tail -20 "$work/dockerd.log" >&2; fail "dockerd exited at start"; }
  sleep 0.25
done
"$DOCKER" version >/dev/null 2>&1 || { tail -20 "$work/dockerd.log" >&2; fail "dockerd did not answer in 30 s"; }
echo "dockerd $("$DOCKER" version --format '{{.Server.Version}}') (pid $dockerd_pid)"

# The ports docker-compose.yml publishes must be free on this host.
python3 - <<'PY' || fail "a port docker-compose.yml publishes is taken on this host"
import socket, sys
for host, port in (("0.0.0.0", 8080), ("127.0.0.1", 50051)):
    s = socket.socket()
    try:
        s.bind((host, port))
    except OSError as e:
        sys.exit(f"{host}:{port}: {e}")
    finally:
        s.close()
PY

# ---------------------------------------------------------------------------------------------
phase "base image (debootstrap bookworm minbase)"
base_tar="$cache/debian-bookworm-minbase.tar"
if [ ! -s "$base_tar" ] || [ -n "$(find "$base_tar" -mtime +6)" ]; then
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
  # Sources as the official image has them: security and point updates too.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
  tar --numeric-owner -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$rootfs"
else
  echo "reusing $base_tar ($(date -r "$base_tar" +%F))"
fi
"$DOCKER" import --change 'CMD ["bash"]' "$base_tar" localhost/debian:bookworm-slim >/dev/null
# The name the Dockerfile's runtime stage starts from.
"$DOCKER" tag localhost/debian:bookworm-slim debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
phase "PostgreSQL stand-in image (while cargo builds)"
mkdir -p "$GROUPS_AIRGAP_CONTEXT"
compose build --quiet postgres

phase "release binaries (waiting for cargo build --release)"
cargo_status=0
wait "$cargo_pid" || cargo_status=$?
cargo_pid=
cat "$work/cargo.log"
[ "$cargo_status" -eq 0 ] || fail "cargo build --release failed"
awk -v a="$cargo_started" -v b="$(now)" 'BEGIN { printf "cargo build --release: %.1f s in all\n", b - a }'
# The build context of the groups image: the Dockerfile's runtime stage as it is, after a
# stand-in for the builder stage that holds the binaries built above.
mkdir -p "$GROUPS_AIRGAP_CONTEXT/out"
for bin in "${bins[@]}"; do cp "${CARGO_TARGET_DIR:-target}/release/$bin" "$GROUPS_AIRGAP_CONTEXT/out/"; done
grep -q '^FROM .* AS runtime$' Dockerfile || fail "the Dockerfile has no 'FROM ... AS runtime' stage"
{
  echo "# Generated by .ci/compose.sh: the Dockerfile's runtime stage, fed with host-built binaries."
  echo "FROM scratch AS build"
  echo "COPY out/ /out/"
  sed -n '/^FROM .* AS runtime$/,$p' Dockerfile
} >"$GROUPS_AIRGAP_CONTEXT/Dockerfile"

# ---------------------------------------------------------------------------------------------
# The README's compose section, command for command: each is recorded, run as written, and its
# stdout kept in $out; at the end the README's list must be the list run here.
ran=()
readme_run() {
  ran+=("$1")
  echo "\$ $1"
  out=$(eval "$1" </dev/null 2>"$work/stderr") || { cat "$work/stderr" >&2; fail "README command failed: $1"; }
  out=${out//$'\r'/}
  [ -z "$out" ] || printf '%s\n' "$out"
}
json_field() { python3 -c 'import json, sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1"; }
client() { python3 .ci/compose_client.py "$@"; }
psql_query() { compose exec -T postgres psql -U groups -d groups -v ON_ERROR_STOP=1 -qAt -F ' ' -c "$1"; }
container() { compose ps -q "$1"; }
# A service's log lines as its processes wrote them (compose v2.26 starts every line with an
# erase-line code, \e[2K, even when not writing to a terminal).
compose_logs() { compose logs --no-color --no-log-prefix "$1" | tr -d '\r' | sed -E $'s/^\e\\[[0-9]*K//'; }
state_of() {
  "$DOCKER" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$(container "$1")"
}
# Every long-running service healthy, and the one-shot migration exited 0.
wait_healthy() {
  local deadline=$((SECONDS + ${1:-180})) service
  for service in postgres server gateway; do
    until [ "$(state_of "$service" 2>/dev/null)" = healthy ]; do
      [ "$SECONDS" -lt "$deadline" ] || fail "$service is $(state_of "$service" 2>/dev/null || echo missing), not healthy"
      sleep 1
    done
  done
  local migrate
  migrate=$(compose ps -a -q migrate)
  [ "$("$DOCKER" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$migrate")" = "exited 0" ] ||
    fail "migrate did not exit 0: $("$DOCKER" inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$migrate")"
  echo "postgres, server, gateway healthy; migrate exited 0"
}
rest=http://127.0.0.1:8080

phase "docker compose up --build (images built offline)"
readme_run "docker compose up --build -d"
wait_healthy 240
"$DOCKER" image inspect localhost/groups:airgap localhost/postgres:15 >/dev/null ||
  fail "compose did not build the local images"
[ "$("$DOCKER" inspect -f '{{.Config.User}}' localhost/groups:airgap)" = "10001:10001" ] ||
  fail "the groups image does not run as 10001:10001"

phase "migrations applied"
migrate_log=$(compose_logs migrate)
echo "migrate: $migrate_log"
migrations=$(find crates/store/migrations -mindepth 1 -maxdepth 1 -type d | wc -l)
applied=$(printf '%s\n' "$migrate_log" | python3 -c 'import json, sys; print(len(json.loads(sys.stdin.readlines()[-1])["applied"]))')
[ "$applied" -eq "$migrations" ] || fail "migrate applied $applied migrations, the repository has $migrations"
recorded=$(psql_query "SELECT count(*) FROM __diesel_schema_migrations")
[ "$recorded" -eq "$migrations" ] || fail "the database records $recorded migrations, not $migrations"
echo "$migrations migration(s) applied and recorded"

phase "gRPC published on loopback only"
published=$(compose port server 50051)
[ "$published" = "127.0.0.1:50051" ] || fail "the server's gRPC port is published on $published, not 127.0.0.1:50051"
bindings=$("$DOCKER" inspect -f '{{json .HostConfig.PortBindings}}' "$(container server)")
echo "server port bindings: $bindings"
printf '%s' "$bindings" | python3 -c '
import json, sys
bindings = json.load(sys.stdin)
hosts = {b["HostIp"] for spec in bindings.values() for b in spec}
sys.exit(0 if hosts == {"127.0.0.1"} else f"published on {hosts}, not only 127.0.0.1")' ||
  fail "the server publishes a port beyond loopback"

phase "provisioning (README commands)"
readme_run "docker compose run --rm migrate groupsctl admin create owner@example.com"
KEY=$(json_field key <<<"$out")
[[ "$KEY" =~ ^[0-9a-f]{39}[02468ace]$ ]] || fail "admin create printed no account key: $out"
readme_run "docker compose run --rm migrate groupsctl instance create demo --owner owner@example.com"
[ "$(json_field name <<<"$out")" = demo ] || fail "instance create: $out"
readme_run "docker compose run --rm migrate groupsctl user create demo alice"
user_id=$(json_field id <<<"$out")
readme_run "docker compose run --rm migrate groupsctl group create demo editors"
group_id=$(json_field id <<<"$out")
readme_run "docker compose run --rm migrate groupsctl member add demo 1 1"
# The README names the ids the two commands above print on a new deployment.
read -r readme_group readme_user < <(awk '{ print $(NF - 1), $NF }' <<<"${ran[-1]}")
[ "$group_id $user_id" = "$readme_group $readme_user" ] ||
  fail "group create / user create printed ids $group_id / $user_id; the README's member add says $readme_group $readme_user"
[ "$(json_field group <<<"$out") $(json_field user <<<"$out")" = "$group_id $user_id" ] ||
  fail "member add: $out"

if [ "${COMPOSE_SKIP_READS:-}" = 1 ]; then
  echo "read routes: SKIPPED (COMPOSE_SKIP_READS=1)"
else
  client check-reads "$rest" demo "$KEY" "$user_id" alice "$group_id" editors yes
fi

# shellcheck disable=SC2016 # $KEY expands when the command runs, as in the README
readme_run 'curl -i -X DELETE -H "X-API-KEY: $KEY" http://127.0.0.1:8080/v1.1/instances/demo/groups/1/users/1/'
[[ "$out" =~ ^HTTP/[0-9.]+\ 204 ]] || fail "the README's REST removal did not answer 204"
out=$(eval "${ran[-1]}" 2>/dev/null | tr -d '\r')
[[ "$out" =~ ^HTTP/[0-9.]+\ 404 ]] && [[ "$out" == *'{"detail":"Not found"}'* ]] ||
  fail "the same removal again did not answer 404 Not found: $out"
echo "the same removal again: 404 {\"detail\":\"Not found\"}"
[ "$(psql_query "SELECT count(*) FROM memberships")" -eq 0 ] || fail "the removed membership is still in the table"
if [ "${COMPOSE_SKIP_READS:-}" != 1 ]; then
  client check-reads "$rest" demo "$KEY" "$user_id" alice "$group_id" editors no
fi

documented=()
while IFS= read -r line; do documented+=("$line"); done < <(
  awk '/^## Deploying with Docker Compose/ { s = 1; next } s && /^## / { exit }
       s && /^```sh$/ { b = 1; next } s && b && /^```$/ { exit } s && b' README.md |
    sed -E 's/[[:space:]]+#.*$//' | grep -E '^(docker|curl) ')
if [ "${documented[*]}" != "${ran[*]}" ]; then
  echo "README's compose section:" >&2
  printf '  %s\n' "${documented[@]}" >&2
  echo "commands run by .ci/compose.sh:" >&2
  printf '  %s\n' "${ran[@]}" >&2
  fail "the README's compose commands and the ones tested differ"
fi
echo "the README's ${#ran[@]} compose commands ran as written"

phase "seed; gRPC from the host"
seed=$(compose run --rm -T migrate groupsctl seed demo --groups 4 --users 150 | tr -d '\r')
echo "seed: $seed"
read -r g1 g4 u1 u150 memberships < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1])
print(*s["groups"], *s["users"], s["memberships"])' "$seed")
[ "$memberships" -eq 600 ] && [ $((g4 - g1)) -eq 3 ] && [ $((u150 - u1)) -eq 149 ] || fail "seed: $seed"
[ "$(psql_query "SELECT count(*) FROM memberships")" -eq 600 ] || fail "the seed's memberships are not in the table"
grpc_version=1.85.1
venv="$cache/grpc-venv-$grpc_version"
if ! "$venv/bin/python" -c 'import grpc, grpc_tools, grpc_status' 2>/dev/null; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio==$grpc_version" \
    "grpcio-tools==$grpc_version" "grpcio-status==$grpc_version"
fi
gen="$work/grpc-gen"
mkdir -p "$gen"
well_known=$("$venv/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
"$venv/bin/python" -m grpc_tools.protoc -Iproto -I"$well_known" --python_out="$gen" \
  --grpc_python_out="$gen" proto/groups/v1/*.proto
"$venv/bin/python" .ci/compose_client.py grpc-remove "$gen" demo "$g1" "$u1" "$KEY" compose-grpc-1
[ "$(psql_query "SELECT count(*) FROM memberships WHERE group_id = $g1 AND user_id = $u1")" -eq 0 ] ||
  fail "the membership removed over gRPC is still in the table"

phase "logs and metrics"
compose_logs server >"$work/server.log"
compose_logs gateway >"$work/gateway.log"
client json-lines server <"$work/server.log"
client json-lines gateway <"$work/gateway.log"
client has-log server message=rpc code=OK request_id=compose-grpc-1 outcome=removed <"$work/server.log"
client has-log gateway message=request method=DELETE status=204 <"$work/gateway.log"
curl -fsS "$rest/metrics" >"$work/gateway.metrics" || fail "GET /metrics on the gateway failed"
removal_route='/v1.1/instances/{instance}/groups/{group_id}/users/{user_id}/'
expect_metric() { # FILE WANTED NAME LABEL=VALUE...
  local file=$1 wanted=$2 got
  shift 2
  got=$(client metric "$@" <"$file") || fail "no $* in the metrics"
  [ "$got" = "$wanted" ] || fail "$*: $got, expected $wanted"
  echo "metric $*: $got"
}
# One REST removal answered 204 and its repeat 404; the server saw that one and the gRPC one.
expect_metric "$work/gateway.metrics" 1 groups_gateway_requests_total method=DELETE status=204 "route=$removal_route"
expect_metric "$work/gateway.metrics" 1 groups_gateway_requests_total method=DELETE status=404 "route=$removal_route"
compose exec -T gateway curl -fsS http://server:9090/metrics | tr -d '\r' >"$work/server.metrics" ||
  fail "the server's metrics are not reachable on the compose network"
expect_metric "$work/server.metrics" 2 groups_server_rpcs_total method=/groups.v1.GroupMembers/RemoveGroupMember code=OK
expect_metric "$work/server.metrics" 2 groups_server_rpcs_total method=/groups.v1.GroupMembers/RemoveGroupMember code=NOT_FOUND

phase "down and up: the data stays"
rows_before=$(psql_query "SELECT count(*) FROM memberships")
compose down --timeout 20
[ -z "$(compose ps -a -q)" ] || fail "containers left after docker compose down"
compose up -d
wait_healthy 180
last_migrate=$(compose_logs migrate | tail -1)
[ "$(json_field applied <<<"$last_migrate")" = "[]" ] || fail "migrate on the kept volume: $last_migrate"
echo "migrate on the kept volume: $last_migrate"
rows_after=$(psql_query "SELECT count(*) FROM memberships")
[ "$rows_after" = "$rows_before" ] || fail "$rows_before memberships before down, $rows_after after up"
# The admin key made before `down` still works.
client http DELETE "$rest/v1.1/instances/demo/groups/$g1/users/$((u1 + 1))/" --key "$KEY" --expect 204
echo "$rows_after memberships kept; the admin key made before down still removes (204)"

phase "server restart under load"
pairs="$work/load.pairs"
psql_query "SELECT group_id, user_id FROM memberships WHERE group_id BETWEEN $g1 AND $g4
            AND user_id BETWEEN $((u1 + 2)) AND $u150 ORDER BY user_id, group_id" >"$pairs"
[ "$(wc -l <"$pairs")" -eq $((4 * 148)) ] || fail "$(wc -l <"$pairs") memberships to remove, not $((4 * 148))"
# 4 clients at 12 removals a second each: under the gateway's 60 a second per instance.
client load "$rest" demo "$KEY" "$pairs" 4 12 "$work/load.json" &
load_pid=$!
sleep 3
restart_begin=$(now)
compose restart --timeout 15 server
restart_end=$(now)
wait "$load_pid" || fail "the load clients failed"
psql_query "SELECT group_id, user_id FROM memberships WHERE group_id BETWEEN $g1 AND $g4
            AND user_id BETWEEN $((u1 + 2)) AND $u150" >"$work/remaining.pairs"
client check-load "$pairs" "$work/load.json" "$work/remaining.pairs" "$restart_begin" "$restart_end"
compose_logs server >"$work/server.log"
client has-log server message="SIGTERM: shutting down" <"$work/server.log"
client has-log server message="gRPC server stopped" <"$work/server.log"
wait_healthy 60
phase_end

"""The host-side client of .ci/compose.sh: what an operator would run against the compose stack.

Each subcommand checks one thing and exits non-zero with a message when it does not hold:

  http METHOD URL [--key KEY] [--auth-token KEY] [--expect STATUS] [--body-file PATH]
      one request; prints the status and body; --expect fails on another status
  grpc-remove GEN_DIR INSTANCE GROUP USER KEY REQUEST_ID
      RemoveGroupMember over gRPC on 127.0.0.1:50051 (stubs compiled into GEN_DIR): OK, the
      request id echoed; then the same call again: NOT_FOUND with ErrorInfo MEMBERSHIP_NOT_FOUND
  json-lines NAME < log
      every line of a `docker compose logs --no-log-prefix` is a JSON object
  has-log NAME KEY=VALUE... < log
      some JSON line has all the given fields (in the line or in one of its spans)
  metric NAME LABEL=VALUE... < page
      prints the sum of the Prometheus samples of NAME whose labels include the given ones
  load URL INSTANCE KEY PAIRS_FILE CLIENTS RATE OUT
      CLIENTS clients, each removing its own memberships (lines "group user") over REST, one
      request each, at most RATE requests a second per client; writes every answer to OUT
  check-load PAIRS_FILE OUT REMAINING_FILE RESTART_BEGIN RESTART_END
      compares the answers with the memberships of PAIRS_FILE left in the database (lines
      "group user"): each removal answered once, 204 exactly for the memberships deleted
  check-reads BASE INSTANCE KEY USER_ID USERNAME GROUP_ID LABEL MEMBER
      GET of the user and of the group as the vendor's SDK sends it (SPEC.md, "The seed's
      example"): 200 and the objects SPEC.md describes; MEMBER (yes/no): the user's groups
      include the group
"""

import json
import re
import sys
import threading
import time
import http.client
import urllib.parse


def fail(message):
    print(f"compose_client: {message}", file=sys.stderr)
    sys.exit(1)


def request(method, url, headers=None, body=None, timeout=30):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def cmd_http(args):
    method, url, rest = args[0], args[1], args[2:]
    headers, expect, body_file = {}, None, None
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--key":
            headers["X-API-KEY"] = value
        elif flag == "--auth-token":
            # What the vendor's Python SDK sends (SPEC.md, "The seed's example").
            headers["Authorization"] = f"token {value}"
            headers["Content-Type"] = "application/json"
        elif flag == "--expect":
            expect = int(value)
        elif flag == "--body-file":
            body_file = value
        else:
            fail(f"http: unknown flag {flag}")
    status, _, data = request(method, url, headers)
    text = data.decode("utf-8", "replace")
    print(f"{status} {text}")
    if body_file:
        with open(body_file, "w") as out:
            out.write(text)
    if expect is not None and status != expect:
        fail(f"{method} {url}: expected {expect}, got {status} {text}")


def cmd_grpc_remove(args):
    gen_dir, instance, group, user, key, request_id = args
    sys.path.insert(0, gen_dir)
    import grpc
    from grpc_status import rpc_status
    from google.rpc import error_details_pb2
    from groups.v1 import group_members_pb2 as pb
    from groups.v1 import group_members_pb2_grpc as pb_grpc

    message = pb.RemoveGroupMemberRequest(
        instance_name=instance, group_id=int(group), user_id=int(user)
    )
    metadata = [("x-api-key", key), ("x-request-id", request_id)]
    with grpc.insecure_channel("127.0.0.1:50051") as channel:
        stub = pb_grpc.GroupMembersStub(channel)
        _, call = stub.RemoveGroupMember.with_call(message, metadata=metadata, timeout=10)
        echoed = dict(call.initial_metadata()).get("x-request-id")
        if echoed != request_id:
            fail(f"gRPC removal answered OK but x-request-id {echoed!r}, not {request_id!r}")
        print(f"gRPC RemoveGroupMember {instance}/{group}/{user}: OK (x-request-id {echoed})")
        try:
            stub.RemoveGroupMember(message, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                fail(f"repeated gRPC removal: {error.code()} {error.details()}, not NOT_FOUND")
            status = rpc_status.from_call(error)
            reasons = []
            for detail in status.details if status else []:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    reasons.append((info.domain, info.reason))
            if ("groups.v1", "MEMBERSHIP_NOT_FOUND") not in reasons:
                fail(f"repeated gRPC removal: NOT_FOUND with ErrorInfo {reasons}")
            print("gRPC RemoveGroupMember again: NOT_FOUND, ErrorInfo MEMBERSHIP_NOT_FOUND")
        else:
            fail("repeated gRPC removal answered OK: the membership was removed twice")


def json_lines(stream):
    lines = [line.rstrip("\r\n") for line in stream if line.strip()]
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            value = json.loads(line)
        except ValueError:
            fail(f"log line {number} is not JSON: {line[:200]}")
        if not isinstance(value, dict):
            fail(f"log line {number} is not a JSON object: {line[:200]}")
        parsed.append(value)
    return parsed


def cmd_json_lines(args):
    (name,) = args
    parsed = json_lines(sys.stdin)
    if not parsed:
        fail(f"{name}: no log lines")
    print(f"{name}: {len(parsed)} log lines, all JSON objects")


def cmd_has_log(args):
    name, wanted = args[0], dict(arg.split("=", 1) for arg in args[1:])

    def fields(line):
        merged = {k: str(v) for k, v in line.items() if not isinstance(v, (dict, list))}
        for span in line.get("spans", []) + [line.get("span") or {}]:
            merged.update({k: str(v) for k, v in span.items()})
        merged.update({k: str(v) for k, v in (line.get("fields") or {}).items()})
        return merged

    for line in json_lines(sys.stdin):
        have = fields(line)
        if all(have.get(k) == v for k, v in wanted.items()):
            print(f"{name}: a log line has {wanted}")
            return
    fail(f"{name}: no JSON log line has {wanted}")


def cmd_metric(args):
    name, wanted = args[0], dict(arg.split("=", 1) for arg in args[1:])
    total, found = 0.0, False
    pattern = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
    for line in sys.stdin:
        match = pattern.match(line)
        if not match or match.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(labels.get(k) == v for k, v in wanted.items()):
            total += float(match.group(4))
            found = True
    if not found:
        fail(f"no sample of {name} with {wanted}")
    print(f"{total:g}")


def cmd_load(args):
    url, instance, key, pairs_file, clients, rate, out = args
    clients, rate = int(clients), float(rate)
    pairs = read_pairs(pairs_file)
    shares = [pairs[i::clients] for i in range(clients)]
    parts = urllib.parse.urlsplit(url)
    answers, lock = [], threading.Lock()

    def client(share):
        conn = None
        for group, user in share:
            started = time.time()
            path = f"/v1.1/instances/{instance}/groups/{group}/users/{user}/"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                conn.request("DELETE", path, headers={"X-API-KEY": key})
                response = conn.getresponse()
                body = response.read().decode("utf-8", "replace")
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                status, body = 0, f"{type(error).__name__}: {error}"
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                answers.append({"group": group, "user": user, "status": status,
                                "body": body[:200], "at": started})
            time.sleep(max(0.0, 1.0 / rate - (time.time() - started)))

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(out, "w") as file:
        json.dump(answers, file)
    print(f"load: {len(answers)} removals by {clients} clients")


def read_pairs(path):
    return [tuple(map(int, line.split())) for line in open(path) if line.strip()]


def cmd_check_load(args):
    pairs_file, out, remaining_file, restart_begin, restart_end = args
    restart_begin, restart_end = float(restart_begin), float(restart_end)
    pairs = set(read_pairs(pairs_file))
    answers = json.load(open(out))
    remaining = set(read_pairs(remaining_file))
    answered = sorted((a["group"], a["user"]) for a in answers)
    if answered != sorted(pairs):
        fail(f"{len(answered)} answers for {len(pairs)} memberships: not one answer each")
    if not remaining <= pairs:
        fail("memberships left that the load did not target: the query is wrong")
    by_status = {}
    for answer in answers:
        by_status[answer["status"]] = by_status.get(answer["status"], 0) + 1
    print("load answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items())))
    problems = []
    for answer in answers:
        pair = (answer["group"], answer["user"])
        deleted = pair not in remaining
        status = answer["status"]
        if status == 204 and not deleted:
            problems.append(f"{pair}: answered 204 but the membership is still there")
        elif status != 204 and deleted:
            problems.append(f"{pair}: deleted but answered {status} {answer['body']} (a lost answer)")
        elif status not in (204, 503):
            problems.append(f"{pair}: answered {status} {answer['body']}")
    before = [a for a in answers if a["status"] == 204 and a["at"] < restart_begin]
    after = [a for a in answers if a["status"] == 204 and a["at"] > restart_end]
    if not before:
        problems.append("no removal succeeded before the restart: the load did not overlap it")
    if not after:
        problems.append("no removal succeeded after the restart: the stack did not recover")
    during = [a for a in answers if restart_begin <= a["at"] <= restart_end]
    if not during:
        problems.append("no request was sent while the server restarted")
    deleted_total = len(pairs - remaining)
    print(f"load: {deleted_total} memberships deleted, {by_status.get(204, 0)} answered 204; "
          f"{len(before)} removals before the restart, {len(during)} requests during it, "
          f"{len(after)} removals after it")
    if problems:
        for problem in problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        fail(f"{len(problems)} problem(s) under the restart")


def cmd_check_reads(args):
    base, instance, key, user_id, username, group_id, label, member = args
    user_id, group_id = int(user_id), int(group_id)
    headers = {"Authorization": f"token {key}", "Content-Type": "application/json"}
    prefix = f"/v1.1/instances/{instance}"

    def get(path):
        status, response_headers, data = request("GET", base + path, headers)
        if status != 200:
            fail(f"GET {path}: {status} {data[:200]!r}, not 200")
        if not response_headers.get("content-type", "").startswith("application/json"):
            fail(f"GET {path}: content-type {response_headers.get('content-type')!r}")
        value = json.loads(data)
        if not isinstance(value, dict):
            fail(f"GET {path}: not a JSON object: {value!r}")
        for forbidden in ("next", "profile"):
            if forbidden in value:
                fail(f"GET {path}: has {forbidden!r}, which the SDK cannot follow: {value!r}")
        return value

    def expect(path, value, field, wanted):
        if value.get(field) != wanted:
            fail(f"GET {path}: {field} is {value.get(field)!r}, not {wanted!r} in {value!r}")

    group_path = f"{prefix}/groups/{group_id}/"
    group = get(group_path)
    expect(group_path, group, "id", group_id)
    expect(group_path, group, "label", label)
    if "name" not in group or "description" not in group:
        fail(f"GET {group_path}: no name or description in {group!r}")
    expect(group_path, group, "links", {"self": group_path, "users": f"{group_path}users/"})

    user_path = f"{prefix}/users/{user_id}/"
    user = get(user_path)
    expect(user_path, user, "id", user_id)
    expect(user_path, user, "username", username)
    expect(user_path, user, "links", {"self": user_path, "groups": f"{user_path}groups/"})
    groups = user.get("groups")
    if not isinstance(groups, list):
        fail(f"GET {user_path}: groups is not a list: {user!r}")
    ids = [g.get("id") for g in groups]
    if ids != sorted(ids):
        fail(f"GET {user_path}: groups not ordered by id: {ids}")
    listed = [g for g in groups if g.get("id") == group_id]
    if member == "yes" and listed != [group]:
        fail(f"GET {user_path}: groups {groups!r} should hold the group {group!r}")
    if member == "no" and listed:
        fail(f"GET {user_path}: groups {groups!r} still hold group {group_id}")
    print(f"GET {user_path} and {group_path}: 200, the user (groups {ids}) and the group")


COMMANDS = {
    "http": cmd_http,
    "grpc-remove": cmd_grpc_remove,
    "json-lines": cmd_json_lines,
    "has-log": cmd_has_log,
    "metric": cmd_metric,
    "load": cmd_load,
    "check-load": cmd_check_load,
    "check-reads": cmd_check_reads,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        fail(f"usage: {sys.argv[0]} {{{'|'.join(COMMANDS)}}} ...")
    COMMANDS[sys.argv[1]](sys.argv[2:])

#!/usr/bin/env python3.11
"""A tiny stand-in for the gateway's three seed routes, for studying the vendor SDK.

Serves SPEC.md's shapes (section "The seed's example") for one instance and logs every
request it receives (method, raw target, headers in wire order, body) as JSON lines.

    python3.11 mock_gateway.py --port 18080 --log /tmp/mock.jsonl

State: instance "demo" (case-insensitive), users 7 (alice) and 8 (bob), groups 3 (editors)
and 4 (writers), every user in every group. Keys: 0{39}2 = owner,
a read-, a write- and a full-role admin; see KEYS below. Anything else is
403 "No such API Key.". No key: 403 "You do not have permission...".

Control (not part of the API, for experiments):
    POST /__mock/reset                 restore the state above, clear the log
    POST /__mock/tweak  {json}         change response shapes, e.g.
         {"user_extra": {"profile": {...}}, "group_extra": {...}, "drop_links": true,
          "get_status": 200, "delete_status": 204, "delete_body": "", "redirect_slashless": true,
          "override": {"GET /v1.1/instances/demo/users/7/": {"status": 429, "body": {...},
                       "headers": [["Retry-After", "1"]], "times": 2}}}
    GET  /__mock/log                   the request log as a JSON array
"""
import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

OWNER = "0" * 39 + "2"      # even last digit: an account key
WRITER = "1" * 39 + "4"
READER = "2" * 39 + "6"
FULL = "3" * 39 + "8"
KEYS = {OWNER: "owner", WRITER: "write", READER: "read", FULL: "full"}

LOCK = threading.Lock()
STATE = {}
LOG = []
TWEAK = {}


def reset():
    STATE.clear()
    STATE.update(
        users={7: "alice", 8: "bob"},
        groups={3: "editors", 4: "writers"},
        members={(3, 7), (4, 7), (3, 8), (4, 8)},
    )
    LOG.clear()
    TWEAK.clear()


reset()

ROUTES = [
    ("GET", re.compile(r"^/(v1(?:\.1)?)/instances/([^/]+)/users/([^/]+)/?$"), "get_user"),
    ("GET", re.compile(r"^/(v1(?:\.1)?)/instances/([^/]+)/groups/([^/]+)/?$"), "get_group"),
    ("DELETE", re.compile(r"^/(v1(?:\.1)?)/instances/([^/]+)/users/([^/]+)/groups/([^/]+)/?$"), "del_user_side"),
    ("DELETE", re.compile(r"^/(v1(?:\.1)?)/instances/([^/]+)/groups/([^/]+)/users/([^/]+)/?$"), "del_group_side"),
]


def group_json(pfx, gid):
    g = {"id": gid, "name": None, "label": STATE["groups"][gid], "description": "",
         "links": {"self": "/%s/instances/demo/groups/%d/" % (pfx, gid),
                   "users": "/%s/instances/demo/groups/%d/users/" % (pfx, gid)}}
    if TWEAK.get("drop_links"):
        del g["links"]
    g.update(TWEAK.get("group_extra", {}))
    return g


def user_json(pfx, uid):
    gids = sorted(g for (g, u) in STATE["members"] if u == uid and g in STATE["groups"])
    u = {"id": uid, "username": STATE["users"][uid], "groups": [group_json(pfx, g) for g in gids],
         "links": {"self": "/%s/instances/demo/users/%d/" % (pfx, uid),
                   "groups": "/%s/instances/demo/users/%d/groups/" % (pfx, uid)}}
    if TWEAK.get("drop_links"):
        del u["links"]
    u.update(TWEAK.get("user_extra", {}))
    return u


def as_id(s):
    return int(s) if re.fullmatch(r"[0-9]{1,19}", s) and 0 < int(s) < 2 ** 63 else None


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-gateway/0"

    def log_message(self, fmt, *args):  # quiet default logging; we keep our own
        pass

    def _send(self, status, body=None, headers=()):
        data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if data:
            self.send_header("Content-Type", "application/json")
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and status not in (204, 304):
            self.wfile.write(data)
        self._entry["status"] = status
        self._entry["response"] = data.decode("utf-8", "replace")

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self._entry = {"method": self.command, "target": self.path, "version": self.request_version,
                       "headers": list(self.headers.items()), "body": body.decode("utf-8", "replace")}
        with LOCK:
            if self.path.startswith("/__mock/"):
                return self._control(body)
            LOG.append(self._entry)
            try:
                self._api()
            finally:
                print(json.dumps(self._entry), file=sys.stderr, flush=True)
                if ARGS.log:
                    with open(ARGS.log, "a") as f:
                        f.write(json.dumps(self._entry) + "\n")

    def _control(self, body):
        if self.path == "/__mock/reset":
            reset()
            return self._send(200, {"ok": True})
        if self.path == "/__mock/tweak":
            TWEAK.update(json.loads(body or b"{}"))
            return self._send(200, TWEAK)
        if self.path == "/__mock/log":
            return self._send(200, LOG)
        return self._send(404, {"detail": "Not found"})

    def _key(self, query):
        if self.headers.get("X-API-KEY"):
            return self.headers["X-API-KEY"]
        for q in ("api_key", "apikey"):
            if q in query:
                return query[q][0]
        auth = (self.headers.get("Authorization") or "").split()
        return auth[1] if len(auth) == 2 else None

    def _api(self):
        u = urlsplit(self.path)
        path, query = u.path, parse_qs(u.query)
        ov = TWEAK.get("override", {}).get("%s %s" % (self.command, path))
        if ov and ov.get("times", 1) > 0:
            ov["times"] = ov.get("times", 1) - 1
            body = ov.get("body")
            if body is not None and not isinstance(body, str):
                body = json.dumps(body)
            return self._send(ov["status"], body.encode() if body else None, ov.get("headers", []))
        if TWEAK.get("redirect_slashless") and not path.endswith("/"):
            return self._send(301, None, [("Location", path + "/")])
        for method, rx, name in ROUTES:
            m = rx.match(path)
            if m:
                break
        else:
            return self._send(404, {"detail": "Not found"})
        if self.command != method and not (method == "GET" and self.command == "HEAD"):
            return self._send(405, {"detail": 'Method "%s" not allowed.' % self.command},
                              [("Allow", "%s, OPTIONS" % method)])
        pfx, inst, a, b = (m.groups() + (None,))[:4]
        if inst.lower() != "demo":
            return self._send(404, {"detail": "Instance was not found."})
        key = self._key(query)
        if key is None:
            return self._send(403, {"detail": "You do not have permission to perform this action."})
        role = KEYS.get(key)
        if role is None:
            return self._send(403, {"detail": "No such API Key."})
        if name == "get_user":
            uid = as_id(a)
            if uid not in STATE["users"]:
                return self._send(404, {"detail": "Not found"})
            return self._send(TWEAK.get("get_status", 200), user_json(pfx, uid))
        if name == "get_group":
            gid = as_id(a)
            if gid not in STATE["groups"]:
                return self._send(404, {"detail": "Not found"})
            return self._send(TWEAK.get("get_status", 200), group_json(pfx, gid))
        if role == "read":
            return self._send(403, {"detail": "You do not have permission to perform this action."})
        if name == "del_user_side":
            uid, gid = as_id(a), as_id(b)
            if uid not in STATE["users"]:
                return self._send(404, {"detail": "User was not found."})
            missing = {"detail": "Not found"}
        else:
            gid, uid = as_id(a), as_id(b)
            if gid not in STATE["groups"]:
                return self._send(404, {"detail": "Group was not found."})
            missing = {"detail": "Not found"}
        if (gid, uid) not in STATE["members"]:
            return self._send(404, missing)
        STATE["members"].discard((gid, uid))
        st = TWEAK.get("delete_status", 204)
        return self._send(st, TWEAK.get("delete_body", "").encode() or None)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _handle


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--log")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer((ARGS.host, ARGS.port), H)
    print("mock gateway on http://%s:%d/" % (ARGS.host, ARGS.port), file=sys.stderr, flush=True)
    srv.serve_forever()

"""Run the seed page's Python example, verbatim, with the vendor SDK (syncano 5.4.6).

The example (seed/groups-users-delete.txt, api.examples.codes[1], language "python") is
kept below byte for byte. Its placeholders are filled without editing any of its lines
except the insides of two string literals:

  * "ACCOUNT_KEY" / "INSTANCE_NAME" are string literals, so their contents are replaced
    textually by $SYNCANO_EXAMPLE_KEY / $SYNCANO_EXAMPLE_INSTANCE (escaped for a
    double-quoted Python literal);
  * USER_ID / GROUP_ID are bare Python names: they are not edited at all, they are bound as
    globals of the exec() from $SYNCANO_EXAMPLE_USER_ID / $SYNCANO_EXAMPLE_GROUP_ID (ints).

The host is not in the example either: the SDK reads it from the environment variable
SYNCANO_APIROOT when `import syncano` runs (syncano/__init__.py: API_ROOT = os.getenv(...)).
check.sh sets it.

Unless SYNCANO_EXAMPLE_TRACE=0, the JSON also lists the HTTP exchanges ("http": method, path,
status, response body; never headers, so never the key), recorded by a pass-through wrapper
around requests.Session.send installed before the example runs.

The page's two endings are alternatives ("# or:"): on one membership the second one can only
404. $SYNCANO_EXAMPLE_ENDING chooses what is executed:
  1     the preamble + `user.remove_from_group(group_id=group.id)`   (user side)
  2     the preamble + `group.delete_user(user_id=user.id)`          (group side)
  page  the whole text exactly as published (ending 1, then ending 2 on the same, now
        removed, membership: the second must raise UserNotFound 404)
  read  the preamble only (connect + the two GETs), no removal
The selected lines are taken verbatim from the text and keep their line numbers (the
dropped lines become blank), so tracebacks point at the page's own lines.

Prints one JSON object on stdout describing the outcome; exit 0 if the executed text ran
to the end, 1 if it raised, 2 on a usage error.
"""
import json
import os
import sys
import traceback

SEED_EXAMPLE = (
    "import syncano\n"
    "from syncano.models import Group, User\n"
    "\n"
    "connection = syncano.connect(api_key=\"ACCOUNT_KEY\", instance_name=\"INSTANCE_NAME\")\n"
    "\n"
    "user = User.please.get(id=USER_ID)\n"
    "group = Group.please.get(id=GROUP_ID)\n"
    "user.remove_from_group(group_id=group.id)\n"
    "\n"
    "# or:\n"
    "group.delete_user(user_id=user.id)\n"
)
# Same text as the JSON string in the seed page (checked by --self-check against the page).
SEED_JSON_STRING = (
    r'import syncano\nfrom syncano.models import Group, User\n\nconnection = syncano.connect('
    r'api_key=\"ACCOUNT_KEY\", instance_name=\"INSTANCE_NAME\")\n\nuser = User.please.get('
    r'id=USER_ID)\ngroup = Group.please.get(id=GROUP_ID)\nuser.remove_from_group('
    r'group_id=group.id)\n\n# or:\ngroup.delete_user(user_id=user.id)\n'
)
ENDING_1 = "user.remove_from_group(group_id=group.id)"
ENDING_2 = "group.delete_user(user_id=user.id)"
FILENAME = "<seed example>"


def usage(msg):
    print(json.dumps({"ok": False, "usage_error": msg}))
    sys.exit(2)


def select_lines(text, ending):
    lines = text.split("\n")
    assert lines.count(ENDING_1) == 1 and lines.count(ENDING_2) == 1, "seed text changed?"
    if ending == "page":
        return text
    drop = {"1": {ENDING_2}, "2": {ENDING_1}, "read": {ENDING_1, ENDING_2}}[ending]
    return "\n".join("" if ln in drop else ln for ln in lines)


def py_str_contents(value, what):
    if any(c in value for c in "\n\r\0"):
        usage("%s must be one line" % what)
    return value.replace("\\", "\\\\").replace('"', '\\"')


def describe(obj, fields):
    if obj is None:
        return None
    if not hasattr(obj, "_raw_data"):
        return {"not_a_model": repr(obj)[:300]}
    out = {}
    for f in fields:
        v = getattr(obj, f, None)
        if hasattr(v, "links_dict"):
            v = v.links_dict
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        elif hasattr(v, "_raw_data"):
            v = repr(v)
        out[f] = v
    return out


def install_trace():
    """Record each HTTP exchange (method, path, status, body) for the report. Passive: wraps
    requests.Session.send and returns its response untouched; no headers (the key) recorded."""
    import requests
    from urllib.parse import urlsplit
    log = []
    orig = requests.Session.send

    def send(self, request, **kw):
        resp = orig(self, request, **kw)
        for r in list(resp.history) + [resp]:
            body = r.content[:300].decode("utf-8", "replace")
            log.append({"method": r.request.method, "path": urlsplit(r.request.url).path,
                        "request_body": (r.request.body or "") if isinstance(r.request.body, str) else "",
                        "status": r.status_code, "body": body})
        return resp
    requests.Session.send = send
    return log


def main():
    if "--self-check" in sys.argv:
        seed = sys.argv[sys.argv.index("--self-check") + 1]
        raw = open(seed, encoding="utf-8").read()
        page = json.loads(raw.split("\n", 1)[0])
        codes = [c for c in page["api"]["examples"]["codes"] if c.get("language") == "python"]
        assert len(codes) == 1 and codes[0]["code"] == SEED_EXAMPLE, "example differs from the seed"
        assert json.loads('"%s"' % SEED_JSON_STRING) == SEED_EXAMPLE
        print(json.dumps({"ok": True, "self_check": "verbatim"}))
        return 0

    env = os.environ
    try:
        key, inst = env["SYNCANO_EXAMPLE_KEY"], env["SYNCANO_EXAMPLE_INSTANCE"]
        uid, gid = env["SYNCANO_EXAMPLE_USER_ID"], env["SYNCANO_EXAMPLE_GROUP_ID"]
    except KeyError as e:
        usage("missing environment variable %s" % e)
    ending = env.get("SYNCANO_EXAMPLE_ENDING", "1")
    if ending not in ("1", "2", "page", "read"):
        usage("SYNCANO_EXAMPLE_ENDING must be 1, 2, page or read")
    try:
        uid, gid = int(uid), int(gid)
    except ValueError:
        usage("user and group ids must be integers")
    if "SYNCANO_APIROOT" not in env:
        usage("SYNCANO_APIROOT (the gateway's base URL) is not set")

    text = select_lines(SEED_EXAMPLE, ending)
    text = text.replace('"ACCOUNT_KEY"', '"%s"' % py_str_contents(key, "key"), 1)
    text = text.replace('"INSTANCE_NAME"', '"%s"' % py_str_contents(inst, "instance"), 1)
    g = {"__name__": "__seed_example__", "USER_ID": uid, "GROUP_ID": gid}
    http = install_trace() if env.get("SYNCANO_EXAMPLE_TRACE", "1") != "0" else None

    result = {"ending": ending, "apiroot": env["SYNCANO_APIROOT"], "instance": inst,
              "user_id": uid, "group_id": gid}
    try:
        exec(compile(text, FILENAME, "exec"), g)
        result["ok"] = True
        rc = 0
    except Exception as e:  # report what the SDK raised, and at which line of the page
        rc = 1
        result["ok"] = False
        result["exception"] = type(e).__name__
        result["exception_bases"] = [c.__name__ for c in type(e).__mro__[1:-2]]
        result["status_code"] = getattr(e, "status_code", None)
        result["reason"] = getattr(e, "reason", None) if isinstance(getattr(e, "reason", None), (str, type(None))) else repr(e.reason)
        result["message"] = str(e)
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == FILENAME]
        if frames:
            result["failed_line"] = SEED_EXAMPLE.split("\n")[frames[-1].lineno - 1]
        result["traceback"] = traceback.format_exc().splitlines()[-6:]
    result["user"] = describe(g.get("user"), ["id", "username", "links", "user_key", "created_at", "updated_at"])
    result["group"] = describe(g.get("group"), ["id", "label", "description", "links", "created_at", "updated_at"])
    if http is not None:
        result["http"] = http
    print(json.dumps(result, default=repr))
    return rc


if __name__ == "__main__":
    sys.exit(main())

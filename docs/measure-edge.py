#!/usr/bin/env python3
"""Measures the gateway's public edge against a running stack (SECURITY.md, "Measured").

  stalled  N connections each send half a request head and stall; meanwhile one real removal
           is timed; then how long until the gateway has closed every stalled connection.
  flood    64 connections from one address send removals with random instance names and random
           well-formed keys for some seconds, while a tenant at another loopback address removes
           real memberships; how many flood requests reached the server (its RPC counter on the
           gateway's /metrics, as under `groupsctl up`), and the tenant's latency and statuses.

Standard library only. Example (a stack from `groupsctl up`, seeded):
  python3 docs/measure-edge.py stalled --gateway 127.0.0.1:8080 --key KEY --group 1 --user 1
  python3 docs/measure-edge.py flood --gateway 127.0.0.1:8080 --key KEY --group 2 --users 1-600
"""

import argparse
import asyncio
import random
import socket
import statistics
import time
import urllib.request

REMOVE_RPC = "/groups.v1.GroupMembers/RemoveGroupMember"


def remove(gateway, key, instance, group, user, source="127.0.0.1"):
    """One DELETE on a fresh connection from `source`; (status, seconds)."""
    host, port = gateway.split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), source_address=(source, 0)) as s:
        s.sendall(
            f"DELETE /v1.1/instances/{instance}/groups/{group}/users/{user}/ HTTP/1.1\r\n"
            f"Host: {gateway}\r\nX-API-KEY: {key}\r\nConnection: close\r\n\r\n".encode()
        )
        status = int(s.recv(64).split(b" ")[1])
    return status, time.monotonic() - started


def server_removals(gateway):
    """The server's count of RemoveGroupMember calls, all codes, from /metrics."""
    page = urllib.request.urlopen(f"http://{gateway}/metrics").read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("groups_server_rpcs_total{") and REMOVE_RPC in line
    )


def stalled(args):
    host, port = args.gateway.split(":")
    sockets = []
    started = time.monotonic()
    for _ in range(args.connections):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"DELETE /v1.1/instances/demo/groups/1/users/1/ HTTP/1.1\r\nHost: x\r\n")
        sockets.append(s)
    opened = time.monotonic() - started
    status, took = remove(args.gateway, args.key, args.instance, args.group, args.user, "127.0.0.2")
    print(f"{args.connections} stalled connections opened in {opened:.1f} s")
    print(f"a real removal meanwhile: {status} in {took * 1000:.1f} ms")
    for s in sockets:
        s.settimeout(120)
    last = 0.0
    for s in sockets:
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        last = time.monotonic() - started
        s.close()
    print(f"every stalled connection closed {last:.1f} s after the first was opened")


async def flood_connection(gateway, deadline, counts):
    host, port = gateway.split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=("127.0.0.1", 0))
    while time.monotonic() < deadline:
        instance = "i" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=12))
        key = "".join(random.choices("0123456789abcdef", k=40))
        writer.write(
            f"DELETE /v1.1/instances/{instance}/groups/1/users/1/ HTTP/1.1\r\n"
            f"Host: {gateway}\r\nX-API-KEY: {key}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        counts[status] = counts.get(status, 0) + 1
    writer.close()


async def tenant(args, deadline, latencies, statuses):
    low, high = (int(x) for x in args.users.split("-"))
    users = iter(range(low, high + 1))
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        user = next(users)
        status, took = await loop.run_in_executor(
            None, remove, args.gateway, args.key, args.instance, args.group, user, "127.0.0.2"
        )
        latencies.append(took)
        statuses[status] = statuses.get(status, 0) + 1
        # 20 a second: a third of the instance's rate limit.
        await asyncio.sleep(0.05)


async def flood(args):
    before = server_removals(args.gateway)
    deadline = time.monotonic() + args.seconds
    counts, latencies, statuses = {}, [], {}
    await asyncio.gather(
        tenant(args, deadline, latencies, statuses),
        *(flood_connection(args.gateway, deadline, counts) for _ in range(args.connections)),
    )
    reached = server_removals(args.gateway) - before - sum(statuses.values())
    sent = sum(counts.values())
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    print(f"flood: {sent} requests in {args.seconds} s from 127.0.0.1, by status {dict(sorted(counts.items()))}")
    print(f"flood requests that reached the server (and the database): {reached:.0f} ({100 * reached / max(sent, 1):.1f}%)")
    print(
        f"tenant at 127.0.0.2: {len(latencies)} removals, by status {dict(sorted(statuses.items()))}, "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["stalled", "flood"])
    parser.add_argument("--gateway", default="127.0.0.1:8080")
    parser.add_argument("--key", required=True)
    parser.add_argument("--instance", default="demo")
    parser.add_argument("--group", type=int, required=True)
    parser.add_argument("--user", type=int, default=1)
    parser.add_argument("--users", default="1-600", help="tenant's user ids (flood)")
    parser.add_argument("--connections", type=int)
    parser.add_argument("--seconds", type=float, default=6)
    args = parser.parse_args()
    if args.what == "stalled":
        args.connections = args.connections or 1500
        stalled(args)
    else:
        args.connections = args.connections or 64
        asyncio.run(flood(args))


if __name__ == "__main__":
    main()

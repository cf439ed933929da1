#!/usr/bin/env python3
"""N concurrent identical requests, one connection each (python3 stdlib only).

Opens N connections to HOST:PORT (at most --connecting at a time, so the
listen backlog never overflows), sends the same `GET PATH` on each as soon as
it is connected, and only then reads the answers. Prints one JSON object:
how many answers per status and per `X-Cache`, when the last request was sent
and the first answer arrived (seconds from the start: all requests were in
flight together when the last send comes before the first answer), and errors.

The caller must allow N open files (`ulimit -n`).

Usage: bench/burst.py HOST PORT PATH N [--header 'Name: value']… [--connecting 256]
"""

import argparse
import asyncio
import collections
import json
import time


async def one(host, port, request, gate, t0, sent, first_answer, out):
    try:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        await writer.drain()
        sent.append(time.monotonic() - t0)
        head = await reader.readuntil(b"\r\n\r\n")
        if not first_answer:
            first_answer.append(time.monotonic() - t0)
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length)
        writer.close()
        out.append((status, headers.get("x-cache", "-"), len(body)))
    except Exception as e:  # noqa: BLE001 - every failure is counted and shown
        out.append(("error", type(e).__name__, 0))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("n", type=int)
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--connecting", type=int, default=256)
    args = ap.parse_args()
    headers = "".join(h + "\r\n" for h in args.header)
    request = ("GET {} HTTP/1.1\r\nHost: {}:{}\r\n{}Connection: close\r\n\r\n".format(
        args.path, args.host, args.port, headers)).encode()
    gate = asyncio.Semaphore(args.connecting)
    sent, first_answer, out = [], [], []
    t0 = time.monotonic()
    await asyncio.gather(*(one(args.host, args.port, request, gate, t0, sent, first_answer, out)
                           for _ in range(args.n)))
    statuses = collections.Counter(s for s, _, _ in out)
    cache = collections.Counter(c for s, c, _ in out if s != "error")
    errors = collections.Counter(c for s, c, _ in out if s == "error")
    print(json.dumps({
        "requests": args.n,
        "status": dict(statuses),
        "x_cache": dict(cache),
        "errors": dict(errors),
        "body_bytes": sorted({b for s, _, b in out if s == "200"}),
        "last_sent_s": round(max(sent), 3) if sent else None,
        "first_answer_s": round(first_answer[0], 3) if first_answer else None,
        "all_done_s": round(time.monotonic() - t0, 3),
    }))


if __name__ == "__main__":
    asyncio.run(main())

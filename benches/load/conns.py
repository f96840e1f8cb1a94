#!/usr/bin/env python3
"""Connection tools for benches/load/compare.sh (standard library only, 127.0.0.1 only).

  conns.py idle  --port P --path /pub/idle --count 10000
      Opens COUNT keep-alive connections, one request answered on each (so every
      connection went through the gateway's request path), keeps them idle, prints
      "OPEN <n>" and waits until its standard input closes; then closes them all and
      prints "CLOSED".
  conns.py tokens --url TOKEN_ENDPOINT --client-id ID --client-secret S --scope S --count N
      Prints N distinct client-credentials access tokens, one a line (one kept-alive
      connection to the provider).
  conns.py burst --port P --path /api/orders/1 --tokens FILE --count 1000
      Opens COUNT connections first, then sends one request on each at once (token i of
      FILE, round robin, as `Authorization: Bearer`), reads every answer and prints the
      statuses as JSON: {"200": 1000}.
"""

import argparse
import base64
import http.client
import json
import resource
import selectors
import socket
import sys
import time
import urllib.parse

HOST = "127.0.0.1"


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        sys.exit(f"conns.py: the open-files limit is {soft}, {needed} are needed (ulimit -n)")


def request(path, token=None):
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Answer:
    """Reads one HTTP/1.1 answer (Content-Length bodies) from a non-blocking socket."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.need = None

    def feed(self, data):
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = self.buf[:end].decode("latin-1").split("\r\n")
            self.status = int(head[0].split(" ")[1])
            length = 0
            for h in head[1:]:
                k, _, v = h.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            self.need = end + 4 + length
        return len(self.buf) >= self.need


def exchange(socks, payloads, deadline):
    """Sends payloads[i] on socks[i] (already connected), reads every answer. Returns statuses."""
    sel = selectors.DefaultSelector()
    answers = {}
    for s, p in zip(socks, payloads):
        s.setblocking(True)
        s.sendall(p)
        s.setblocking(False)
        answers[s.fileno()] = Answer()
        sel.register(s, selectors.EVENT_READ)
    pending = len(socks)
    statuses = {}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            sys.exit(f"conns.py: {pending} answers missing at the deadline")
        for key, _ in sel.select(timeout=left):
            s = key.fileobj
            data = s.recv(65536)
            a = answers[s.fileno()]
            if not data:
                sys.exit(f"conns.py: a connection closed before its answer (status {a.status})")
            if a.feed(data):
                sel.unregister(s)
                pending -= 1
                statuses[a.status] = statuses.get(a.status, 0) + 1
    sel.close()
    return statuses


def connect(port, count):
    socks = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        try:
            s.connect((HOST, port))
        except OSError as e:
            sys.exit(f"conns.py: connection {i + 1} of {count} failed: {e}")
        socks.append(s)
    return socks


def idle(args):
    raise_nofile(args.count + 64)
    socks = []
    deadline = time.monotonic() + args.timeout
    # Batches, so the listen backlog is never the limit.
    for start in range(0, args.count, 500):
        batch = connect(args.port, min(500, args.count - start))
        statuses = exchange(batch, [request(args.path)] * len(batch), deadline)
        if set(statuses) != {200}:
            sys.exit(f"conns.py: answers other than 200: {statuses}")
        socks += batch
    print(f"OPEN {len(socks)}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()
    print("CLOSED", flush=True)


def tokens(args):
    u = urllib.parse.urlsplit(args.url)
    if u.hostname != HOST:
        sys.exit("conns.py: the token endpoint must be on 127.0.0.1")
    basic = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": args.scope})
    conn = http.client.HTTPConnection(HOST, u.port, timeout=10)
    seen = set()
    for _ in range(args.count):
        conn.request("POST", u.path, body, {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        })
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            sys.exit(f"conns.py: the token endpoint answered {r.status}: {data[:200]!r}")
        t = json.loads(data)["access_token"]
        if t not in seen:
            seen.add(t)
            print(t)
    conn.close()


def burst(args):
    raise_nofile(args.count + 64)
    toks = [t.strip() for t in open(args.tokens) if t.strip()]
    if not toks:
        sys.exit("conns.py: no tokens")
    socks = connect(args.port, args.count)
    payloads = [request(args.path, toks[i % len(toks)]) for i in range(args.count)]
    statuses = exchange(socks, payloads, time.monotonic() + args.timeout)
    for s in socks:
        s.close()
    print(json.dumps({str(k): v for k, v in sorted(statuses.items())}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("idle")
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--path", default="/")
    a.add_argument("--count", type=int, default=10000)
    a.add_argument("--timeout", type=float, default=120)
    t = sub.add_parser("tokens")
    t.add_argument("--url", required=True)
    t.add_argument("--client-id", required=True)
    t.add_argument("--client-secret", required=True)
    t.add_argument("--scope", default="")
    t.add_argument("--count", type=int, default=1)
    b = sub.add_parser("burst")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--path", required=True)
    b.add_argument("--tokens", required=True)
    b.add_argument("--count", type=int, default=1000)
    b.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    {"idle": idle, "tokens": tokens, "burst": burst}[args.cmd](args)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak test: mixed traffic through one Portcullis gateway for a long while, watching for
leaks (memory, file descriptors) and for errors.

    python3 benches/soak/soak.py                        # 30 minutes (SOAK_MINUTES, else 30)
    python3 benches/soak/soak.py --minutes 2 --out /tmp/soak2.md
    SOAK_MINUTES=120 python3 benches/soak/soak.py

It starts, all on 127.0.0.1 and on free ports (bound to port 0 first):
  - the look-alike OpenID provider (node tests/e2e/provider/server.js, --access-ttl 20
    --rotate-refresh-tokens: access tokens live 20 s, every refresh rotates the refresh token);
  - an echo backend (portcullis echo);
  - the gateway (portcullis -c TMP/gateway.toml, PORTCULLIS_LOG=warn) with three routes:
    /pub/ public, /api/ bearer (billing-service, orders:read / orders:write), /app/ login.
Then, concurrently, until the time is up:
  pub     keep-alive GETs on /pub/x;
  api     GETs on /api/orders/1 with a client-credentials token of billing-service, a new
          one from the provider's token endpoint every ~15 s (the `token` kind);
  app     a few browsers (alice, bob, ...) logged in once, each with two "tabs" sharing its
          cookie jar, sending fetches (Accept: application/json) on /app/x; the gateway
          refreshes their sessions on the way (Set-Cookie), and the jar follows like a
          browser's (one jar per host:port);
  login   a new browser every ~10 s: the full login through the provider's form, a fetch
          on /app/x, then
  logout  /_portcullis/logout?rd=/pub/ through the provider's end-session page back to
          /pub/, and a check that the old session cookie is refused (401) afterwards.
Every minute it prints one line: the gateway's RSS (VmRSS of /proc/PID/status), its open
file descriptors (/proc/PID/fd), its CPU use, and the requests sent and errors per kind since
the line before. An error is any answer but the expected one (status, Location, the identity
the backend saw), a connection error or a timeout; the first few are printed as they happen.
At the end it writes a Markdown report (--out, default benches/soak/SOAK.md): command, date,
machine, the table, and a verdict line (RSS and fds at minute 1 against the last minute,
total errors). Exit status: 0 without errors, 1 with errors, 2 when it could not start,
130 when interrupted (Ctrl-C still stops every process it started and writes the report
of the minutes done).

Needs python3 (standard library only), node with tests/e2e/node_modules (`make npm`), and a
release build (`cargo build --release --locked`; BIN or --bin to use another binary, which
is copied to the temp dir first, so a rebuild during the soak changes nothing).
"""

import argparse
import ctypes
import datetime
import email.utils
import html
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GATEWAY_CLIENT = ("portcullis", "portcullis-secret-0123456789abcdef")
SERVICE_CLIENT = ("billing-service", "billing-secret-0123456789abcdef")
SERVICE_SCOPE = "orders:read orders:write"
USERS = [("alice", "alice-password"), ("bob", "bob-password")]

KINDS = ("pub", "api", "app", "login", "logout", "token")
ACCESS_TTL = 20          # seconds, the provider's --access-ttl
TOKEN_EVERY = 15         # seconds between two client-credentials tokens
TIMEOUT = 10             # seconds, every request
MAX_SAMPLES = 10         # errors printed (and kept for the report) as they happen

# A page load, as a browser sends it, and a fetch of an SPA (never a page load).
NAVIGATE = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
FETCH = {"Accept": "application/json", "Sec-Fetch-Mode": "cors"}

SESSION_COOKIE = re.compile(r"^_portcullis(_[0-9]+)?$")


def log(msg):
    sys.stderr.write(f"soak: {msg}\n")    # one write: lines of several threads do not mix
    sys.stderr.flush()


class SetupError(Exception):
    pass


# ---------------------------------------------------------------- counters


class Stats:
    """Requests sent and errors per kind, plus a few other counts; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = dict.fromkeys(KINDS, 0)
        self.errors = dict.fromkeys(KINDS, 0)
        self.other = {"refreshed": 0, "logins": 0, "logouts": 0, "relogins": 0}
        self.samples = []
        self.t0 = time.monotonic()

    def count(self, kind):
        with self.lock:
            self.sent[kind] += 1

    def add(self, name, n=1):
        with self.lock:
            self.other[name] += n

    def fail(self, kind, what):
        with self.lock:
            self.errors[kind] += 1
            n = sum(self.errors.values())
            keep = len(self.samples) < MAX_SAMPLES
            if keep:
                line = f"+{time.monotonic() - self.t0:7.1f}s  {kind:<6}  {what}"
                self.samples.append(line)
        if keep:
            log(f"error {n}: {line}")

    def snapshot(self):
        with self.lock:
            return dict(self.sent), dict(self.errors), dict(self.other)


# ---------------------------------------------------------------- a small HTTP client


class Answer:
    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers          # [(name lower-case, value)], in order
        self.body = body
        loc = self.header("location")
        self.location = urllib.parse.urljoin(url, loc) if loc is not None else None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def set_cookies(self):
        return [v for k, v in self.headers if k == "set-cookie"]

    def text(self, n=200):
        t = self.body[:n].decode("utf-8", "replace").replace("\n", " ")
        return t + ("…" if len(self.body) > n else "")


def origin_of(url):
    u = urllib.parse.urlsplit(url)
    return f"{u.hostname}:{u.port or 80}"


def parse_set_cookie(value):
    """(name, value, expired) of a Set-Cookie value (Max-Age=0, a past Expires or an empty
    value delete the cookie, as in tests/support/browser.rs)."""
    first, *attrs = value.split(";")
    name, _, val = first.partition("=")
    name, val = name.strip(), val.strip()
    expired = val == ""
    for attr in attrs:
        k, _, v = attr.strip().partition("=")
        k = k.strip().lower()
        if k == "max-age":
            try:
                expired = expired or int(v.strip()) <= 0
            except ValueError:
                pass
        elif k == "expires":
            try:
                expired = expired or email.utils.parsedate_to_datetime(v.strip()).timestamp() <= time.time()
            except (TypeError, ValueError):
                pass
    return name, val, expired


class Jar:
    """A browser's cookies, one jar per host:port (browsers keep loopback cookies apart by
    port only in the tests' sense: the gateway and the provider share 127.0.0.1). Path and
    Domain are not looked at: every cookie of a host:port goes with every request to it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_origin = {}

    def header(self, origin):
        with self.lock:
            c = self.by_origin.get(origin, {})
            return "; ".join(f"{k}={v}" for k, v in c.items())

    def keep(self, origin, set_cookies):
        if not set_cookies:
            return
        with self.lock:
            c = self.by_origin.setdefault(origin, {})
            for sc in set_cookies:
                name, val, expired = parse_set_cookie(sc)
                if expired:
                    c.pop(name, None)
                else:
                    c[name] = val

    def names(self, origin):
        with self.lock:
            return list(self.by_origin.get(origin, {}))


class Client:
    """Keep-alive connections (one per host:port, reopened after an error or a close) and,
    optionally, a cookie jar; never follows redirects."""

    def __init__(self, jar=None):
        self.jar = jar
        self.conns = {}

    def send(self, method, url, headers=None, form=None):
        u = urllib.parse.urlsplit(url)
        key = (u.hostname, u.port or 80)
        conn = self.conns.get(key)
        if conn is None:
            conn = self.conns[key] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=TIMEOUT)
        h = dict(headers or {})
        origin = origin_of(url)
        if self.jar is not None:
            cookie = self.jar.header(origin)
            if cookie:
                h["Cookie"] = cookie
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        target = u.path + (f"?{u.query}" if u.query else "")
        try:
            conn.request(method, target, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()
            self.conns.pop(key, None)
            raise
        a = Answer(url, resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
        if self.jar is not None:
            self.jar.keep(origin, a.set_cookies())
        return a

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def short(url):
    """A URL for an error line: path, and the query cut short."""
    u = urllib.parse.urlsplit(url)
    q = f"?{u.query[:60]}{'…' if len(u.query) > 60 else ''}" if u.query else ""
    return f"{u.scheme}://{u.netloc}{u.path}{q}"


def exchange(stats, kind, client, method, url, want, headers=None, form=None, check=None, seen=None):
    """One request counted under `kind`: the Answer when its status is in `want` and
    `check(answer)` finds nothing wrong (returns None), else None (the error recorded; the
    answer, if any, appended to the list `seen`)."""
    want = (want,) if isinstance(want, int) else tuple(want)
    stats.count(kind)
    try:
        a = client.send(method, url, headers, form)
    except (OSError, http.client.HTTPException) as e:
        stats.fail(kind, f"{method} {short(url)}: {type(e).__name__}: {e}")
        return None
    if seen is not None:
        seen.append(a)
    problem = None
    if a.status not in want:
        problem = f"{a.status}, not {'/'.join(map(str, want))}"
    elif check is not None:
        problem = check(a)
    if problem:
        stats.fail(kind, f"{method} {short(url)} -> {problem}; body: {a.text()!r}")
        return None
    return a


def echo_check(uri, header=None, value=None):
    """A check of the echo backend's JSON: the URI it got, and an identity header."""

    def check(a):
        try:
            echo = json.loads(a.body)
        except ValueError:
            return "not the echo backend's JSON"
        if echo.get("uri") != uri:
            return f"the backend got {echo.get('uri')!r}, not {uri!r}"
        leaked = [v for k, v in echo.get("headers", []) if k == "cookie" and "_portcullis" in v]
        if leaked:
            return "the gateway's session cookie reached the backend"
        if header is not None:
            got = [v for k, v in echo.get("headers", []) if k == header]
            if got != [value]:
                return f"the backend got {header}: {got}, not [{value!r}]"
        return None

    return check


def location_check(prefix, exact=False):
    def check(a):
        if a.location is None:
            return "no Location"
        if (a.location != prefix) if exact else not a.location.startswith(prefix):
            return f"Location {short(a.location)}, not {'' if exact else 'under '}{short(prefix)}"
        return None

    return check


# ---------------------------------------------------------------- the setup


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent():
    # The child gets SIGTERM if this script dies without cleaning up (SIGKILL, a crash).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Processes:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []     # (name, Popen, log path)

    def start(self, name, argv, env=None, stdout=None):
        logpath = os.path.join(self.tmp, f"{name}.log")
        err = open(logpath, "wb")
        out = open(stdout, "wb") if stdout else err
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=e,
                             start_new_session=True, preexec_fn=_die_with_parent)
        err.close()
        if stdout:
            out.close()
        self.procs.append((name, p, logpath))
        return p

    def dead(self):
        return [(n, p.returncode) for n, p, _ in self.procs if p.poll() is not None]

    def stop(self):
        # The gateway first (it would otherwise log the provider going away), then the rest.
        for _, p, _ in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for _, p, _ in reversed(self.procs):
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no log)"


def wait_for(what, proc, logpath, ready, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"{what} exited during start-up ({proc.returncode}):\n{tail(logpath)}")
        got = ready()
        if got:
            return got
        time.sleep(0.1)
    raise SetupError(f"{what} was not ready within {seconds} s:\n{tail(logpath)}")


def http_status(url):
    try:
        u = urllib.parse.urlsplit(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=1)
        try:
            c.request("GET", u.path)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()
    except (OSError, http.client.HTTPException):
        return None


def run(argv, what):
    r = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise SetupError(f"{what} failed ({r.returncode}): {shlex.join(argv)}\n{r.stdout}{r.stderr}")
    return r.stdout


def gateway_config(gw_port, admin_port, echo_port, issuer, secret):
    echo = f"http://{HOST}:{echo_port}"
    return f"""# Generated by benches/soak/soak.py.
[server]
listen = ["{HOST}:{gw_port}"]
public_url = "http://{HOST}:{gw_port}"
shutdown_grace = "0s"

[admin]
listen = "{HOST}:{admin_port}"

[provider]
issuer = "{issuer}"
client_id = "{GATEWAY_CLIENT[0]}"
client_secret = "{GATEWAY_CLIENT[1]}"

[session]
secrets = ["{secret}"]
refresh = true          # the default

[[routes]]
name = "public"
path = "/pub/"
upstream = "{echo}"
auth = "public"

[[routes]]
name = "bearer"
path = "/api/"
upstream = "{echo}"
auth = "bearer"
allow = {{ clients = ["{SERVICE_CLIENT[0]}"] }}
scopes = {{ read = ["orders:read"], write = ["orders:write"] }}

[[routes]]
name = "login"
path = "/app/"
upstream = "{echo}"
auth = "login"
"""


class Proc:
    """What /proc says about one process."""

    def __init__(self, pid):
        self.pid = pid
        self.hz = os.sysconf("SC_CLK_TCK")

    def rss_kb(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_s(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.hz

    def fd_kinds(self, ports):
        """The open fds by what they are: `ports` maps a name to a port; a TCP socket counts
        under the name of its remote port (a connection the process opened), else of its
        local port (listening, or a connection it accepted)."""
        tcp = {}
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{self.pid}/net/{table}") as f:
                    next(f)
                    for line in f:
                        x = line.split()
                        tcp[x[9]] = (int(x[1].rsplit(":", 1)[1], 16), int(x[2].rsplit(":", 1)[1], 16), x[3])
            except OSError:
                pass
        unix = set()
        try:
            with open(f"/proc/{self.pid}/net/unix") as f:
                next(f)
                unix = {line.split()[6] for line in f if len(line.split()) > 6}
        except OSError:
            pass
        by_port = {v: k for k, v in ports.items()}
        kinds = {}
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]$", target)
            if m and m.group(1) in tcp:
                local, remote, state = tcp[m.group(1)]
                if state == "0A":
                    kind = "listening"
                elif remote in by_port:
                    kind = f"to {by_port[remote]}"
                elif local in by_port:
                    kind = f"from clients of {by_port[local]}"
                else:
                    kind = "other TCP"
            elif m and m.group(1) in unix:
                kind = "unix sockets"
            elif m:
                kind = "other sockets"
            elif target.startswith("anon_inode:"):
                kind = target[len("anon_inode:"):].strip("[]")
            elif target.startswith("pipe:"):
                kind = "pipes"
            else:
                kind = "files"
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    def sample(self):
        return {"t": time.monotonic(), "rss_kb": self.rss_kb(), "fds": self.fds(), "cpu_s": self.cpu_s()}


# ---------------------------------------------------------------- the traffic


def paced(stop, per_second):
    """Yields about per_second times a second until stop is set (never in a burst to catch
    up: a late worker just goes on from now)."""
    interval = 1.0 / per_second
    due = time.monotonic()
    while not stop.is_set():
        yield
        due += interval
        delay = due - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        else:
            due = time.monotonic()


class Soak:
    def __init__(self, args, stats, gw_port, issuer):
        self.args = args
        self.stats = stats
        self.gw = f"http://{HOST}:{gw_port}"
        self.gw_origin = origin_of(self.gw)
        self.issuer = issuer
        self.op_origin = issuer.split("/realms/")[0]
        self.oidc = f"{issuer}/protocol/openid-connect"
        self.stop = threading.Event()
        self.token = None
        self.token_lock = threading.Lock()

    # -------------------------------------------------- bearer tokens

    def fetch_token(self):
        c = Client()
        try:
            a = exchange(self.stats, "token", c, "POST", f"{self.oidc}/token", 200, {"Accept": "application/json"},
                         form={"grant_type": "client_credentials", "client_id": SERVICE_CLIENT[0],
                               "client_secret": SERVICE_CLIENT[1], "scope": SERVICE_SCOPE},
                         check=lambda a: None if "access_token" in json.loads(a.body or b"{}") else "no access_token")
        except ValueError:
            self.stats.fail("token", "the token endpoint's answer is not JSON")
            return None
        finally:
            c.close()
        if a is None:
            return None
        token = json.loads(a.body)["access_token"]
        with self.token_lock:
            self.token = token
        return token

    def token_worker(self):
        ok = True
        while not self.stop.wait(TOKEN_EVERY if ok else 2):
            ok = self.fetch_token() is not None

    # -------------------------------------------------- plain traffic

    def public_worker(self):
        c = Client()
        path = "/pub/x"
        for _ in paced(self.stop, self.args.public_rps):
            exchange(self.stats, "pub", c, "GET", self.gw + path, 200, check=echo_check(path))
        c.close()

    def bearer_worker(self):
        c = Client()
        path = "/api/orders/1"
        for _ in paced(self.stop, self.args.bearer_rps):
            with self.token_lock:
                token = self.token
            exchange(self.stats, "api", c, "GET", self.gw + path, 200, {"Authorization": f"Bearer {token}"},
                     check=echo_check(path, "x-auth-request-client", SERVICE_CLIENT[0]))
        c.close()

    # -------------------------------------------------- browsers

    def session_cookies(self, jar):
        return [n for n in jar.names(self.gw_origin) if SESSION_COOKIE.match(n)]

    def log_in(self, jar, user, password, kind="login"):
        """Logs `user` in through the gateway and the provider's form, as a browser: a page
        load of /app/, every redirect inspected, then followed. True when the gateway set
        a session cookie and /app/ answered 200."""
        c = Client(jar)
        st = self.stats
        try:
            start = f"{self.gw}/app/"
            a = exchange(st, kind, c, "GET", start, 302, NAVIGATE, check=location_check(f"{self.oidc}/auth?"))
            if a is None:
                return False
            url, posted = a.location, False
            for _ in range(12):
                if url.startswith(f"{self.gw}/_portcullis/callback?"):
                    if exchange(st, kind, c, "GET", url, 302, NAVIGATE, check=location_check(start, exact=True)) is None:
                        return False
                    if not self.session_cookies(jar):
                        st.fail(kind, f"the callback set no session cookie (cookies: {jar.names(self.gw_origin)})")
                        return False
                    if exchange(st, kind, c, "GET", start, 200, NAVIGATE) is None:
                        return False
                    st.add("logins")
                    return True
                if not url.startswith(f"{self.op_origin}/"):
                    st.fail(kind, f"sent to {short(url)}, neither the gateway's callback nor the provider")
                    return False
                a = exchange(st, kind, c, "GET", url, (200, 302, 303), NAVIGATE)
                if a is None:
                    return False
                if a.status == 200:
                    form = re.search(rb'<form[^>]*action="([^"]*)"', a.body)
                    if b'name="username"' not in a.body or form is None or "/login-actions/" not in url:
                        st.fail(kind, f"GET {short(url)} -> 200 without the login form: {a.text()!r}")
                        return False
                    if posted:
                        st.fail(kind, f"the login form came back for {user}: wrong password? {a.text()!r}")
                        return False
                    action = urllib.parse.urljoin(url, html.unescape(form.group(1).decode()))
                    posted = True
                    a = exchange(st, kind, c, "POST", action, (302, 303), form={"username": user, "password": password},
                                 check=location_check(f"{self.op_origin}/"))
                    if a is None:
                        return False
                if a.location is None:
                    st.fail(kind, f"GET {short(url)} -> {a.status} without a Location")
                    return False
                url = a.location
            st.fail(kind, "more than 12 redirects on the way to the callback")
            return False
        finally:
            c.close()

    def log_out(self, jar, kind="logout"):
        """/_portcullis/logout?rd=/pub/, the provider's end-session page (its form posted, as
        its JavaScript would), back to /pub/."""
        c = Client(jar)
        st = self.stats
        try:
            a = exchange(st, kind, c, "GET", f"{self.gw}/_portcullis/logout?rd=/pub/", 302, NAVIGATE,
                         check=location_check(f"{self.oidc}/logout?"))
            if a is None:
                return False
            left = self.session_cookies(jar)
            if left:
                st.fail(kind, f"the logout left the session cookies {left} in the jar")
                return False
            a = exchange(st, kind, c, "GET", a.location, 200, NAVIGATE,
                         check=lambda a: None if b'id="op.logoutForm"' in a.body else "no logout form")
            if a is None:
                return False
            action = re.search(rb'<form id="op.logoutForm"[^>]*action="([^"]*)"', a.body)
            xsrf = re.search(rb'name="xsrf" value="([^"]*)"', a.body)
            if not action or not xsrf:
                st.fail(kind, f"the provider's logout form has no action or xsrf: {a.text()!r}")
                return False
            confirm = urllib.parse.urljoin(a.url, html.unescape(action.group(1).decode()))
            back = f"{self.gw}/pub/"
            a = exchange(st, kind, c, "POST", confirm, (302, 303),
                         form={"xsrf": html.unescape(xsrf.group(1).decode()), "logout": "yes"},
                         check=location_check(back, exact=True))
            if a is None:
                return False
            if exchange(st, kind, c, "GET", back, 200, NAVIGATE, check=echo_check("/pub/")) is None:
                return False
            st.add("logouts")
            return True
        finally:
            c.close()

    def login_worker(self):
        """A new browser every ~10 s: log in, one fetch, log out, the old cookie refused."""
        n = 0
        for _ in paced(self.stop, 1.0 / self.args.login_every):
            user, password = USERS[n % len(USERS)]
            n += 1
            jar = Jar()
            if not self.log_in(jar, user, password):
                continue
            c = Client(jar)
            path = "/app/x"
            a = exchange(self.stats, "login", c, "GET", self.gw + path, 200, FETCH,
                         check=echo_check(path, "x-auth-request-user", user))
            c.close()
            if a is None:
                continue
            old = jar.header(self.gw_origin)
            if not self.log_out(jar):
                continue
            # The session is marked ended: a copy of the cookie is worthless now.
            c = Client()
            exchange(self.stats, "logout", c, "GET", self.gw + path, 401, {**FETCH, "Cookie": old})
            c.close()

    def start_browser(self, user, password):
        """A logged-in browser for the session tabs."""
        b = {"user": user, "password": password, "jar": Jar(), "lock": threading.Lock()}
        if not self.log_in(b["jar"], user, password):
            raise SetupError(f"could not log {user} in (see the error above)")
        return b

    def tab_worker(self, b):
        """One tab of a logged-in browser: fetches on /app/x, the jar shared with its other
        tabs and kept up to date from the gateway's Set-Cookie (the refreshed session)."""
        c = Client(b["jar"])
        path = "/app/x"
        for _ in paced(self.stop, self.args.session_rps):
            sent_with = b["jar"].header(self.gw_origin)
            seen = []
            a = exchange(self.stats, "app", c, "GET", self.gw + path, 200, FETCH,
                         check=echo_check(path, "x-auth-request-user", b["user"]), seen=seen)
            if a is not None:
                if any(SESSION_COOKIE.match(parse_set_cookie(sc)[0]) for sc in a.set_cookies()):
                    self.stats.add("refreshed")
                continue
            if not seen or seen[0].status != 401:
                continue
            # The session is gone (already counted as an error): the browser logs in again,
            # once for all its tabs.
            with b["lock"]:
                if b["jar"].header(self.gw_origin) == sent_with and not self.stop.is_set():
                    self.stats.add("relogins")
                    self.log_in(b["jar"], b["user"], b["password"], kind="app")
        c.close()


# ---------------------------------------------------------------- the report


def machine():
    try:
        cpus = len(os.sched_getaffinity(0))     # what nproc says
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    mem = "?"
    model = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                    break
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": cpus, "memory": mem, "cpu": model, "kernel": f"{platform.system()} {platform.release()}",
            "load": open("/proc/loadavg").read().split()[:3]}


def fmt_errors(errs):
    parts = [f"{k} {v}" for k, v in errs.items() if v]
    return f"{sum(errs.values())} ({', '.join(parts)})" if parts else "0"


COLUMNS = ["min", "RSS MB", "fds", "CPU %"] + list(KINDS) + ["refreshed", "errors"]


def row_cells(r):
    return [str(r["n"]), f"{r['rss_kb'] / 1024:.1f}", str(r["fds"]), f"{r['cpu']:.1f}"] + \
        [str(r["sent"][k]) for k in KINDS] + [str(r["refreshed"]), fmt_errors(r["errors"])]


WIDTHS = [4, 7, 5, 6, 7, 7, 7, 6, 7, 6, 10, 0]


def console_line(cells):
    return "  ".join(c.rjust(w) if w else c for c, w in zip(cells, WIDTHS))


def metrics_summary(admin_port):
    """portcullis_requests_total per route and status, from the gateway's /metrics."""
    c = Client()
    try:
        a = c.send("GET", f"http://{HOST}:{admin_port}/metrics")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        c.close()
    counts = {}
    failures = {}
    for line in a.body.decode("utf-8", "replace").splitlines():
        m = re.match(r'^(portcullis_requests_total|portcullis_auth_failures_total)\{([^}]*)\}\s+(\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        value = int(float(m.group(3)))
        if m.group(1) == "portcullis_requests_total":
            key = (labels.get("route", "?"), labels.get("status", "?"))
            counts[key] = counts.get(key, 0) + value
        else:
            failures[labels.get("reason", "?")] = failures.get(labels.get("reason", "?"), 0) + value
    return counts, failures


def write_report(path, ctx):
    rows = ctx["rows"]
    lines = ["# Portcullis soak test", ""]
    lines += [f"- command: `{ctx['command']}`",
              f"- date: {ctx['started']} to {ctx['ended']} ({ctx['elapsed']})"]
    m = ctx["machine"]
    model = f" ({m['cpu']})" if m["cpu"] else ""
    lines += [f"- machine: nproc {m['nproc']}{model}, {m['memory']} memory, {m['kernel']}; "
              f"load average before {' '.join(m['load'])}"]
    lines += [f"- portcullis: {ctx['version']}; node {ctx['node']}",
              f"- traffic: {ctx['traffic']}"]
    if ctx.get("interrupted"):
        lines += [f"- **interrupted** after {len(rows)} of {ctx['minutes']} minute(s)"]
    if ctx.get("aborted"):
        lines += [f"- **stopped early**: {ctx['aborted']}"]
    lines += ["", "Per minute: the gateway's RSS (VmRSS) and open fds at the end of the minute, its CPU "
              "use over the minute (100 % = one core), the requests sent and the errors per kind "
              "during the minute; `refreshed`: answers to the session tabs that carried a new "
              "session cookie (a refresh). Minute 0 is the gateway before any traffic.", ""]
    lines.append("| " + " | ".join(COLUMNS) + " |")
    lines.append("|" + "|".join("---:" if i < len(COLUMNS) - 1 else "---" for i in range(len(COLUMNS))) + "|")
    b = ctx["baseline"]
    lines.append("| " + " | ".join(["0", f"{b['rss_kb'] / 1024:.1f}", str(b["fds"])] + ["–"] * (len(COLUMNS) - 3)) + " |")
    for r in rows:
        lines.append("| " + " | ".join(row_cells(r)) + " |")
    total = ctx["total"]
    setup_sent, _, setup_other = ctx["setup"]
    lines += ["", f"Totals of the traffic (to its last request, after the last line too): "
              f"{', '.join(f'{k} {total[0][k]}' for k in KINDS)} requests; "
              f"{ctx['other']['logins']} logins, {ctx['other']['logouts']} logouts, "
              f"{ctx['other']['refreshed']} refreshed session cookies, "
              f"{ctx['other']['relogins']} re-logins of a session tab; errors {fmt_errors(total[1])} "
              f"(the set-up's included). Before minute 1, the set-up: {setup_other['logins']} browser "
              f"login(s) and a token, {sum(setup_sent.values())} requests."]
    if ctx.get("after"):
        a = ctx["after"]
        lines += ["", f"After the traffic stopped (its connections closed, {a['wait']} s later): RSS "
                  f"{a['rss_kb'] / 1024:.1f} MB, {a['fds']} fds (before any traffic: "
                  f"{b['rss_kb'] / 1024:.1f} MB, {b['fds']} fds)."]
    lines += ["", f"**Verdict:** {ctx['verdict']}", ""]
    lines += ["The gateway's fds by kind (a TCP connection under the peer it goes to, or the "
              "listener it came in on):", ""]
    shown = [(f"minute {rows[0]['n']}", rows[0])]
    if len(rows) > 1:
        shown.append((f"minute {rows[-1]['n']}", rows[-1]))
    if ctx.get("after"):
        shown.append(("after the traffic", ctx["after"]))
    for label, r in shown:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(r["fd_kinds"].items(), key=lambda kv: (-kv[1], kv[0])))
        lines.append(f"- {label}: {r['fds']} fds: {kinds}")
    lines.append("")
    if ctx["samples"]:
        lines += ["## First errors", "", "```"] + ctx["samples"] + ["```", ""]
    metrics = ctx.get("metrics")
    if metrics:
        counts, failures = metrics
        lines += ["## The gateway's own count", "",
                  "`portcullis_requests_total` at the end, per route and status (status 0: the client "
                  "left first); `portcullis_auth_failures_total` per reason.", "",
                  "| route | status | requests |", "|---|---:|---:|"]
        for (route, status), v in sorted(counts.items()):
            lines.append(f"| {route} | {status} | {v} |")
        lines += [""]
        if failures:
            lines += ["| auth failure reason | count |", "|---|---:|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(failures.items())] + [""]
        else:
            lines += ["No `portcullis_auth_failures_total` samples.", ""]
    gl = ctx["gateway_log"]
    lines += ["## The gateway's log", "",
              f"PORTCULLIS_LOG=warn: {gl[0]} line(s)" + (":" if gl[1] else "."), ""]
    if gl[1]:
        lines += ["```"] + gl[1] + ["```", ""]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines))
    os.replace(path + ".tmp", path)


def verdict(rows, errors):
    first, last = rows[0], rows[-1]
    d_rss = (last["rss_kb"] - first["rss_kb"]) / 1024
    d_fds = last["fds"] - first["fds"]
    pct = 100 * (last["rss_kb"] - first["rss_kb"]) / first["rss_kb"] if first["rss_kb"] else 0
    return (f"RSS {first['rss_kb'] / 1024:.1f} MB at minute {first['n']}, {last['rss_kb'] / 1024:.1f} MB at "
            f"minute {last['n']} ({d_rss:+.1f} MB, {pct:+.1f} %); fds {first['fds']} at minute {first['n']}, "
            f"{last['fds']} at minute {last['n']} ({d_fds:+d}); errors: {fmt_errors(errors)}.")


# ---------------------------------------------------------------- main


def positive(kind):
    def parse(v):
        x = kind(v)
        if x <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
        return x
    return parse


def main():
    env_minutes = os.environ.get("SOAK_MINUTES")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Environment: SOAK_MINUTES (the default of --minutes), BIN (of --bin).")
    p.add_argument("--minutes", type=positive(int), default=30,
                   help="how long the traffic runs (default: SOAK_MINUTES, else 30)")
    p.add_argument("--out", help="the Markdown report (default benches/soak/SOAK.md; - for none)")
    p.add_argument("--bin", default=os.environ.get("BIN"),
                   help="the gateway binary (default: BIN, else target/release/portcullis)")
    p.add_argument("--interval", type=positive(float), default=60.0,
                   help="seconds per table line (default 60: one a minute; shorter for a quick look)")
    p.add_argument("--sessions", type=positive(int), default=3, help="logged-in browsers (alice, bob, alice, ...)")
    p.add_argument("--tabs", type=positive(int), default=2, help="concurrent tabs of each browser, one cookie jar")
    p.add_argument("--public-rps", type=positive(float), default=40, help="requests a second of each public worker (2)")
    p.add_argument("--bearer-rps", type=positive(float), default=25, help="requests a second of each bearer worker (2)")
    p.add_argument("--session-rps", type=positive(float), default=10, help="requests a second of each tab")
    p.add_argument("--login-every", type=positive(float), default=10, help="seconds between two new logins")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (config, logs); kept anyway on errors")
    if env_minutes:
        try:
            p.set_defaults(minutes=positive(int)(env_minutes))
        except (ValueError, argparse.ArgumentTypeError):
            p.error(f"SOAK_MINUTES: a whole number of minutes > 0, got {env_minutes!r}")
    args = p.parse_args()
    # Paths given are relative to where the script was started; the defaults to the repository.
    args.out = os.path.join(ROOT, "benches/soak/SOAK.md") if args.out is None else \
        args.out if args.out == "-" else os.path.abspath(args.out)
    args.bin = os.path.join(ROOT, "target/release/portcullis") if not args.bin else os.path.abspath(args.bin)

    os.chdir(ROOT)
    command = ("SOAK_MINUTES=" + env_minutes + " " if env_minutes and "--minutes" not in " ".join(sys.argv) else "") + \
        shlex.join(["python3", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even when started with SIGINT ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if not os.access(args.bin, os.X_OK):
        log(f"no gateway at {args.bin}: cargo build --release --locked")
        return 2
    if not os.path.isdir("tests/e2e/node_modules/oidc-provider"):
        log("tests/e2e/node_modules is missing: make npm")
        return 2
    if shutil.which("node") is None:
        log("node is missing")
        return 2

    tmp = tempfile.mkdtemp(prefix="portcullis-soak.")
    procs = Processes(tmp)
    stats = Stats()
    soak = None
    threads = []
    rows = []
    ctx = {"command": command, "minutes": args.minutes, "rows": rows, "samples": stats.samples}
    status = 0
    keep = args.keep_tmp
    started = datetime.datetime.now(datetime.timezone.utc)
    ctx["machine"] = machine()
    gw = None
    admin_port = None
    try:
        bin_path = os.path.join(tmp, "portcullis")
        shutil.copy2(args.bin, bin_path)
        version = run([bin_path, "--version"], "portcullis --version").strip().splitlines()[0]
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
            dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src", "Cargo.toml", "Cargo.lock"]).returncode
            version += f" (commit {commit or '?'}{' + uncommitted changes' if dirty else ''})"
        except OSError:
            pass
        ctx["version"] = version
        ctx["node"] = run(["node", "--version"], "node --version").strip()

        op_port, echo_port, gw_port, admin_port = free_ports(4)
        issuer = f"http://{HOST}:{op_port}/realms/internal"

        op_out = os.path.join(tmp, "provider.out")
        op = procs.start("provider", ["node", "tests/e2e/provider/server.js", "--port", str(op_port),
                                      "--access-ttl", str(ACCESS_TTL), "--rotate-refresh-tokens"], stdout=op_out)

        def provider_ready():
            with open(op_out) as f:
                for line in f:
                    if "READY" in line:
                        return json.loads(line.split("READY", 1)[1])["issuer"]
            return None
        got = wait_for("the provider", op, os.path.join(tmp, "provider.log"), provider_ready)
        if got != issuer:
            raise SetupError(f"the provider's issuer is {got}, not {issuer}")

        echo = procs.start("echo", [bin_path, "echo", "--listen", f"{HOST}:{echo_port}"], env={"PORTCULLIS_LOG": "warn"})
        wait_for("the echo backend", echo, os.path.join(tmp, "echo.log"), lambda: http_status(f"http://{HOST}:{echo_port}/"))

        secret = run([bin_path, "secret"], "portcullis secret").strip()
        config = os.path.join(tmp, "gateway.toml")
        with open(config, "w") as f:
            f.write(gateway_config(gw_port, admin_port, echo_port, issuer, secret))
        run([bin_path, "check", "-c", config], "portcullis check")
        gw = procs.start("gateway", [bin_path, "-c", config], env={"PORTCULLIS_LOG": "warn"})
        wait_for("the gateway", gw, os.path.join(tmp, "gateway.log"),
                 lambda: http_status(f"http://{HOST}:{admin_port}/readyz") == 200)
        gwp = Proc(gw.pid)
        ports = {"the echo backend": echo_port, "the provider": op_port, "the gateway": gw_port,
                 "the admin listener": admin_port}
        log(f"provider {issuer}, echo :{echo_port}, gateway :{gw_port} (admin :{admin_port}, pid {gw.pid}); temp dir {tmp}")

        soak = Soak(args, stats, gw_port, issuer)
        if soak.fetch_token() is None:
            raise SetupError("no client-credentials token from the provider (see the error above)")
        browsers = [soak.start_browser(*USERS[i % len(USERS)]) for i in range(args.sessions)]

        traffic = (f"pub 2 × {args.public_rps:g}/s, api 2 × {args.bearer_rps:g}/s (a new token every {TOKEN_EVERY} s, "
                   f"tokens live {ACCESS_TTL} s), app {args.sessions} browser(s) × {args.tabs} tab(s) × "
                   f"{args.session_rps:g}/s, a login + logout every {args.login_every:g} s; "
                   f"{args.interval:g} s per line")
        ctx["traffic"] = traffic
        log(f"traffic for {args.minutes} × {args.interval:g} s: {traffic}")

        ctx["baseline"] = gwp.sample()
        ctx["setup"] = stats.snapshot()
        stats.t0 = time.monotonic()
        work = [soak.token_worker, soak.login_worker] + [soak.public_worker] * 2 + [soak.bearer_worker] * 2
        work += [lambda b=b: soak.tab_worker(b) for b in browsers for _ in range(args.tabs)]
        for fn in work:
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            threads.append(t)

        print(console_line(COLUMNS), flush=True)
        b = ctx["baseline"]
        print(console_line(["0", f"{b['rss_kb'] / 1024:.1f}", str(b["fds"])] + ["-"] * (len(COLUMNS) - 3)), flush=True)
        t0 = stats.t0
        prev = (b, *ctx["setup"])
        for n in range(1, args.minutes + 1):
            due = t0 + n * args.interval
            while time.monotonic() < due:
                time.sleep(min(0.5, max(0.0, due - time.monotonic())))
                dead = procs.dead()
                if dead:
                    raise SetupError("exited during the soak: " + ", ".join(f"{nm} ({rc})" for nm, rc in dead))
            s = gwp.sample()
            sent, errors, other = stats.snapshot()
            r = {"n": n, "rss_kb": s["rss_kb"], "fds": s["fds"],
                 "cpu": 100 * (s["cpu_s"] - prev[0]["cpu_s"]) / (s["t"] - prev[0]["t"]),
                 "sent": {k: sent[k] - prev[1][k] for k in KINDS},
                 "errors": {k: errors[k] - prev[2][k] for k in KINDS},
                 "refreshed": other["refreshed"] - prev[3]["refreshed"]}
            r["fd_kinds"] = gwp.fd_kinds(ports)
            rows.append(r)
            print(console_line(row_cells(r)), flush=True)
            prev = (s, sent, errors, other)
    except KeyboardInterrupt:
        ctx["interrupted"] = True
        log("interrupted")
        status = 130
    except SetupError as e:
        log(str(e))
        if rows:
            ctx["aborted"] = str(e).splitlines()[0]
        status = 2
        keep = True
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if soak is not None:
                soak.stop.set()
                for t in threads:
                    t.join(timeout=TIMEOUT + 5)
            if rows and gw is not None and gw.poll() is None:
                time.sleep(2)
                ctx["after"] = dict(gwp.sample(), wait=2, fd_kinds=gwp.fd_kinds(ports))
                ctx["metrics"] = metrics_summary(admin_port)
        finally:
            procs.stop()
        sent, errors, other = stats.snapshot()
        if "setup" in ctx:   # the traffic's own counts, the set-up's logins and token apart
            s_sent, s_errors, s_other = ctx["setup"]
            sent = {k: sent[k] - s_sent[k] for k in KINDS}
            other = {k: other[k] - s_other[k] for k in other}
        ctx["total"] = (sent, errors)
        ctx["other"] = other
        total_errors = sum(errors.values())
        if rows:
            ctx["ended"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            ctx["started"] = started.strftime("%Y-%m-%d %H:%M:%S UTC")
            el = int((datetime.datetime.now(datetime.timezone.utc) - started).total_seconds())
            ctx["elapsed"] = f"{el // 60} min {el % 60} s"
            ctx["verdict"] = verdict(rows, errors)
            glog = os.path.join(tmp, "gateway.log")
            lines = [ln for ln in open(glog, errors="replace").read().splitlines() if ln.strip()] \
                if os.path.exists(glog) else []
            ctx["gateway_log"] = (len(lines), lines[:10])
            print(f"\nverdict: {ctx['verdict']}", flush=True)
            if args.out != "-":
                write_report(args.out, ctx)
                log(f"wrote {args.out}")
        if total_errors:
            if status == 0:
                status = 1
            keep = True
        if keep:
            log(f"kept {tmp} (config, logs)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

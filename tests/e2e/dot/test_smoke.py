"""Smoke test of the django-oauth-toolkit test server (stdlib only).

    bash tests/e2e/dot/setup.sh
    tests/e2e/dot/.venv/bin/python -m unittest discover -s tests/e2e/dot -p 'test_*.py'

Starts run.py on a free port and checks what Portcullis relies on: opaque
client-credentials tokens, RFC 7662 introspection with client_secret_basic,
revocation, expiry, and the shapes of the answers.
"""

import atexit
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# run.py needs Django & co.: use the venv that setup.sh made, whatever runs this file
VENV_PYTHON = os.path.join(HERE, ".venv", "bin", "python")
SERVER_PYTHON = VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable
sys.path.insert(0, HERE)
from dotserver.clients import CLIENTS  # noqa: E402

INVENTORY = ("inventory-service", CLIENTS["inventory-service"]["secret"])
AUDIT = ("audit-service", CLIENTS["audit-service"]["secret"])
PORTCULLIS = ("portcullis", CLIENTS["portcullis"]["secret"])

assert INVENTORY[1] == "inventory-secret-0123456789abcdef"
assert AUDIT[1] == "audit-secret-0123456789abcdef"
assert PORTCULLIS[1] == "portcullis-introspect-0123456789abcdef"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def http(method, url, form=None, basic=None, bearer=None):
    """Returns (status, headers, parsed JSON body or raw text)."""
    data = urllib.parse.urlencode(form, doseq=True).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if basic:
        cred = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {cred}")
    if bearer:
        req.add_header("Authorization", f"Bearer {bearer}")
    try:
        with _opener.open(req, timeout=30) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    text = raw.decode("utf-8", "replace")
    if (headers.get("Content-Type") or "").startswith("application/json"):
        return status, headers, json.loads(text)
    return status, headers, text


class DotServer:
    """run.py as a subprocess; start() waits for its READY line."""

    def __init__(self, env=None):
        self.env = dict(os.environ)
        self.env.pop("DOT_DATA_DIR", None)  # run.py makes and removes its own
        self.env.update(env or {})
        self.proc = None
        self.stderr = tempfile.TemporaryFile()
        self.ready = None

    def start(self, timeout=90):
        # Stopped at interpreter exit too, whatever way the test run ends.
        atexit.register(self.stop)
        self.proc = subprocess.Popen(
            [SERVER_PYTHON, os.path.join(HERE, "run.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.env,
            text=True,
        )
        lines = []
        reader = threading.Thread(target=lambda: lines.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        line = lines[0] if lines else ""
        if not line:
            # Nothing printed within the bound (or it exited): kill it rather than wait on it.
            self.proc.kill()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"run.py did not get ready: stdout={line!r} stderr={self.log()!r}")
        self.ready_line = line
        self.ready = json.loads(line[len("READY ") :])
        return self.ready

    def log(self):
        if self.stderr.closed:
            return self._log
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def stop(self):
        """SIGTERM; returns the exit status ("killed" if it did not stop within 15 s)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "killed"
        if not self.stderr.closed:
            self.proc.stdout.close()
            self._log = self.log()
            self.stderr.close()
        return rc


def token(srv, client, **extra):
    form = {"grant_type": "client_credentials", **extra}
    return http("POST", srv["token"], form, basic=client)


def introspect(srv, tok, client=PORTCULLIS):
    return http("POST", srv["introspect"], {"token": tok}, basic=client)


class SmokeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = DotServer()
        cls.srv = cls.server.start()

    @classmethod
    def tearDownClass(cls):
        rc = cls.server.stop()
        if rc != 0:
            raise AssertionError(f"run.py exited {rc!r} on SIGTERM; stderr:\n{cls.server.log()}")

    def new_token(self, client=INVENTORY, **extra):
        status, _, body = token(self.srv, client, **extra)
        self.assertEqual(status, 200, body)
        return body

    def test_ready_line(self):
        srv = self.srv
        port = srv["port"]
        self.assertIsInstance(port, int)
        base = f"http://127.0.0.1:{port}/o"
        self.assertEqual(
            srv,
            {
                "issuer": base,
                "port": port,
                "introspect": f"{base}/introspect/",
                "token": f"{base}/token/",
                "revoke": f"{base}/revoke_token/",
            },
        )
        self.assertEqual(self.server.ready_line, "READY " + json.dumps(srv) + "\n")

    def test_client_credentials_token_is_opaque(self):
        body = self.new_token()
        self.assertEqual(set(body), {"access_token", "expires_in", "token_type", "scope"})
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3600)
        self.assertEqual(body["scope"], "inventory:read inventory:write")  # per-app default
        tok = body["access_token"]
        self.assertNotIn(".", tok)  # not a JWT
        self.assertTrue(tok.isalnum() and len(tok) == 30, tok)

    def test_introspection_active_shape(self):
        before = int(time.time())
        tok = self.new_token()["access_token"]
        status, headers, body = introspect(self.srv, tok)
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        # exactly these fields: no username (no user), no aud (no RFC 8707 resource),
        # no sub, iat, token_type, iss
        self.assertEqual(set(body), {"active", "scope", "exp", "client_id"}, body)
        self.assertIs(body["active"], True)
        self.assertEqual(body["scope"], "inventory:read inventory:write")
        self.assertEqual(body["client_id"], "inventory-service")
        self.assertIsInstance(body["exp"], int)
        self.assertTrue(before + 3600 - 5 <= body["exp"] <= int(time.time()) + 3600 + 5, body)

    def test_introspection_of_narrowed_scope(self):
        tok = self.new_token(scope="inventory:read")["access_token"]
        _, _, body = introspect(self.srv, tok)
        self.assertEqual(body["scope"], "inventory:read")
        self.assertTrue(body["active"])

    def test_revoked_token_is_inactive(self):
        tok = self.new_token()["access_token"]
        self.assertTrue(introspect(self.srv, tok)[2]["active"])
        status, _, body = http(
            "POST", self.srv["revoke"], {"token": tok, "token_type_hint": "access_token"}, basic=INVENTORY
        )
        self.assertEqual((status, body), (200, ""))
        status, _, body = introspect(self.srv, tok)
        self.assertEqual((status, body), (200, {"active": False}))
        # revoking again is still 200 (RFC 7009)
        self.assertEqual(http("POST", self.srv["revoke"], {"token": tok}, basic=INVENTORY)[0], 200)

    def test_other_client_cannot_revoke(self):
        tok = self.new_token()["access_token"]
        status, _, _ = http("POST", self.srv["revoke"], {"token": tok}, basic=AUDIT)
        self.assertEqual(status, 200)  # RFC 7009: no disclosure...
        self.assertTrue(introspect(self.srv, tok)[2]["active"])  # ...and no effect

    def test_unknown_token_is_inactive(self):
        status, _, body = introspect(self.srv, "no-such-token-0123456789")
        self.assertEqual((status, body), (200, {"active": False}))

    def test_missing_token_parameter(self):
        status, _, body = http("POST", self.srv["introspect"], {}, basic=PORTCULLIS)
        self.assertEqual(status, 400)
        self.assertEqual(body, {"error": "invalid_request", "error_description": "Token parameter is missing."})

    def test_wrong_introspection_credentials_are_refused(self):
        tok = self.new_token()["access_token"]
        for creds in [("portcullis", "wrong-secret"), ("no-such-client", "x"), None]:
            status, headers, body = introspect(self.srv, tok, client=creds)
            # DOT answers a bare 403 (text/html, empty body, no WWW-Authenticate), not 401
            self.assertEqual(status, 403, creds)
            self.assertEqual(body, "", creds)
            self.assertIsNone(headers.get("WWW-Authenticate"), creds)

    def test_introspection_via_bearer_needs_introspection_scope(self):
        tok = self.new_token()["access_token"]
        # a token without the `introspection` scope cannot introspect
        self.assertEqual(http("POST", self.srv["introspect"], {"token": tok}, bearer=tok)[0], 403)
        # portcullis' own client-credentials token carries `introspection` and can
        ptok = self.new_token(client=PORTCULLIS)
        self.assertEqual(ptok["scope"], "introspection")
        status, _, body = http("POST", self.srv["introspect"], {"token": tok}, bearer=ptok["access_token"])
        self.assertEqual(status, 200)
        self.assertTrue(body["active"])

    def test_any_confidential_client_may_introspect_with_basic(self):
        # DOT checks only that the Basic credentials are a valid client's: not scopes
        tok = self.new_token(client=AUDIT)["access_token"]
        status, _, body = introspect(self.srv, tok, client=INVENTORY)
        self.assertEqual(status, 200)
        self.assertEqual(body["client_id"], "audit-service")

    def test_introspection_get_and_body_credentials(self):
        tok = self.new_token()["access_token"]
        q = urllib.parse.urlencode({"token": tok})
        status, _, body = http("GET", f"{self.srv['introspect']}?{q}", basic=PORTCULLIS)
        self.assertEqual(status, 200)
        self.assertTrue(body["active"])
        form = {"token": tok, "client_id": PORTCULLIS[0], "client_secret": PORTCULLIS[1]}
        status, _, body = http("POST", self.srv["introspect"], form)
        self.assertEqual(status, 200)
        self.assertTrue(body["active"])

    def test_introspect_path_needs_trailing_slash(self):
        status, headers, _ = introspect({"introspect": self.srv["introspect"].rstrip("/")}, "x")
        self.assertEqual(status, 301)
        self.assertEqual(headers["Location"], "/o/introspect/")

    def test_per_application_scopes(self):
        status, _, body = token(self.srv, AUDIT, scope="inventory:write")
        self.assertEqual((status, body), (400, {"error": "invalid_scope"}))
        self.assertEqual(self.new_token(client=AUDIT)["scope"], "inventory:read")
        status, _, body = token(self.srv, INVENTORY, scope="introspection")
        self.assertEqual((status, body), (400, {"error": "invalid_scope"}))

    def test_bad_client_secret_at_token_endpoint(self):
        status, headers, body = token(self.srv, ("inventory-service", "wrong"))
        self.assertEqual((status, body), (401, {"error": "invalid_client"}))
        self.assertEqual(headers["WWW-Authenticate"], 'Bearer error="invalid_client"')

    def test_resource_indicator_gives_aud(self):
        # RFC 8707: a token requested with `resource` is introspected with `aud`
        tok = self.new_token(resource=["http://127.0.0.1:8080/", "https://api.example/"])["access_token"]
        _, _, body = introspect(self.srv, tok)
        self.assertEqual(body["aud"], ["http://127.0.0.1:8080/", "https://api.example/"])
        self.assertEqual(set(body), {"active", "scope", "exp", "client_id", "aud"})
        # a resource that is no absolute URI: 400 invalid_target (a JSON body that DOT
        # labels Content-Type: text/html)
        status, headers, body = token(self.srv, INVENTORY, resource="portcullis")
        self.assertEqual(status, 400)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        self.assertEqual(json.loads(body)["error"], "invalid_target")

    def test_discovery_documents(self):
        issuer = self.srv["issuer"]
        origin = issuer[: -len("/o")]
        status, _, meta = http("GET", f"{issuer}/.well-known/oauth-authorization-server")
        self.assertEqual(status, 200)
        self.assertEqual(meta["issuer"], issuer)
        self.assertEqual(meta["introspection_endpoint"], self.srv["introspect"])
        self.assertEqual(meta["revocation_endpoint"], self.srv["revoke"])
        self.assertEqual(meta["token_endpoint"], self.srv["token"])
        self.assertIn("client_secret_basic", meta["introspection_endpoint_auth_methods_supported"])
        status, _, meta2 = http("GET", f"{origin}/.well-known/oauth-authorization-server/o")
        self.assertEqual((status, meta2), (200, meta))
        status, _, oidc = http("GET", f"{issuer}/.well-known/openid-configuration")
        self.assertEqual(status, 200)
        self.assertEqual(oidc["issuer"], issuer)
        self.assertEqual(oidc["token_endpoint"], self.srv["token"])
        self.assertNotIn("introspection_endpoint", oidc)  # only in the RFC 8414 document
        status, _, jwks = http("GET", oidc["jwks_uri"])
        self.assertEqual(status, 200)
        self.assertEqual(jwks["keys"][0]["kty"], "RSA")


class ExpiryTest(unittest.TestCase):
    def test_expired_token_is_inactive(self):
        server = DotServer({"DOT_ACCESS_TTL": "2"})
        srv = server.start()
        try:
            status, _, body = token(srv, INVENTORY)
            self.assertEqual(status, 200, body)
            self.assertEqual(body["expires_in"], 2)
            tok = body["access_token"]
            _, _, active = introspect(srv, tok)
            self.assertTrue(active["active"])
            time.sleep(max(0.0, active["exp"] - time.time()) + 1.0)
            status, _, body = introspect(srv, tok)
            self.assertEqual((status, body), (200, {"active": False}))
        finally:
            self.assertEqual(server.stop(), 0, server.log())


if __name__ == "__main__":
    unittest.main()

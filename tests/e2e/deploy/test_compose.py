"""deploy/compose: what can be checked without a container engine. The file is loaded as
`docker compose config` loads it (compose-go: the Compose Specification's schema,
interpolation, paths), every file it mounts or builds from exists, its gateway.toml fits
the services around it, and its Keycloak realm is the Keycloak suite's export with only
the gateway URLs changed. Nothing here starts a container."""

import copy
import ipaddress
import json
import os
import sys
import tempfile
import tomllib
import unittest
from urllib.parse import urlsplit

from support import COMPOSE_CONFIG, DEPLOY, ROOT, TEST_SECRET, DeployCase, env_references, read, run

COMPOSE = os.path.join(DEPLOY, "compose")
COMPOSE_FILE = os.path.join(COMPOSE, "compose.yaml")
SUITE_REALM = os.path.join(ROOT, "tests", "e2e", "keycloak", "realm-internal.json")
COMPOSE_REALM = os.path.join(COMPOSE, "realm-internal.json")
# What .env must hold (README, "Docker Compose").
DOT_ENV = {"PORTCULLIS_SESSION_SECRET": TEST_SECRET, "DJANGO_SECRET_KEY": TEST_SECRET}
# The clients whose URLs are the gateway's (as in tests/e2e/keycloak/keycloak.mjs).
GATEWAY_CLIENTS = ("portcullis", "minio-console")
GATEWAY_URL_ATTRIBUTES = ("post.logout.redirect.uris", "backchannel.logout.url")


def load_compose(path=COMPOSE_FILE, env=DOT_ENV):
    """(returncode, model or None, stderr) of compose-config with only `env` set."""
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    p = run([COMPOSE_CONFIG, path], env={**base, **env})
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0 else None), p.stderr


def without_gateway_urls(realm):
    """The realm with the gateway clients' URLs taken out: what must equal the suite's."""
    realm = copy.deepcopy(realm)
    for client in realm.get("clients", []):
        if client["clientId"] in GATEWAY_CLIENTS:
            client.pop("redirectUris", None)
            client.pop("baseUrl", None)
            for key in GATEWAY_URL_ATTRIBUTES:
                client.get("attributes", {}).pop(key, None)
    return realm


def realm_differences(suite, compose):
    """The top-level parts (clients, clientScopes, roles, users, ...) that differ."""
    a, b = without_gateway_urls(suite), without_gateway_urls(compose)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def copy_sources(dockerfile, context):
    """The sources of the COPY/ADD lines of a Dockerfile that copy from the build context."""
    sources = []
    for line in read(dockerfile).splitlines():
        words = line.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources += [os.path.join(context, s) for s in args[:-1]]
    return sources


class Loads(DeployCase):
    def test_compose_file_loads_as_docker_compose_would(self):
        code, model, err = load_compose()
        self.assertEqual(code, 0, err)
        self.assertEqual(sorted(model["services"]), ["keycloak", "portcullis", "redis", "shop", "whoami"])

    def test_loader_refuses_a_misspelt_key_and_a_missing_secret(self):
        # Proof that the load above checks something: the schema and the `:?` variables.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "compose.yaml")
            with open(path, "w") as f:
                f.write(read(COMPOSE_FILE).replace("    read_only: true\n", "    read_onyl: true\n", 1))
            code, _, err = load_compose(path)
            self.assertNotEqual(code, 0)
            self.assertIn("read_onyl", err)
        for missing in DOT_ENV:
            with self.subTest(unset=missing):
                code, _, err = load_compose(env={k: v for k, v in DOT_ENV.items() if k != missing})
                self.assertNotEqual(code, 0)
                self.assertIn(missing, err)

    def test_every_file_it_mounts_or_builds_from_exists(self):
        _, model, _ = load_compose()
        checked = 0
        for name, service in model["services"].items():
            for volume in service.get("volumes", []):
                if volume["type"] == "bind":
                    with self.subTest(service=name, mount=volume["target"]):
                        self.assertTrue(os.path.exists(volume["source"]), volume["source"])
                        checked += 1
                else:
                    self.assertIn(volume["source"], model.get("volumes", {}), f"{name}: undeclared volume")
            build = service.get("build")
            if build:
                with self.subTest(service=name, build=build["dockerfile"]):
                    context = build["context"]
                    dockerfile = os.path.normpath(os.path.join(context, build["dockerfile"]))
                    self.assertTrue(os.path.isdir(context), context)
                    self.assertTrue(os.path.isfile(dockerfile), dockerfile)
                    # Without it BuildKit sends .venv, target/ and the like to the builder.
                    self.assertTrue(os.path.isfile(dockerfile + ".dockerignore"), dockerfile + ".dockerignore")
                    for source in copy_sources(dockerfile, context):
                        self.assertTrue(os.path.exists(source), f"{dockerfile}: COPY {source}")
                        checked += 1
        self.assertGreaterEqual(checked, 4)


class FitsTheGateway(DeployCase):
    def setUp(self):
        super().setUp()
        code, self.model, err = load_compose()
        self.assertEqual(code, 0, err)
        self.services = self.model["services"]
        self.gateway = self.services["portcullis"]
        [mount] = [v for v in self.gateway["volumes"] if v["target"] == "/etc/portcullis/gateway.toml"]
        self.config_text = read(mount["source"])
        self.config = tomllib.loads(self.config_text)

    def published(self, service, target):
        [port] = [p for p in self.services[service].get("ports", []) if p["target"] == target]
        return port

    def test_gateway_reads_only_variables_compose_sets(self):
        env = self.gateway["environment"]
        for name in env_references(self.config_text):
            with self.subTest(variable=name):
                self.assertTrue(env.get(name), f"gateway.toml reads ${{{name}}}, compose.yaml does not set it")

    def test_browser_urls_are_the_published_ports(self):
        public = urlsplit(self.config["server"]["public_url"])
        [listen] = self.config["server"]["listen"]
        port = self.published("portcullis", int(listen.rsplit(":", 1)[1]))
        self.assertEqual(int(port["published"]), public.port)
        self.assertEqual(port["host_ip"], "127.0.0.1")
        self.assertEqual(public.hostname, "localhost")
        admin = self.published("portcullis", int(self.config["admin"]["listen"].rsplit(":", 1)[1]))
        self.assertEqual(admin["host_ip"], "127.0.0.1")
        self.assertEqual(self.services["shop"]["environment"]["PORTCULLIS_PUBLIC_URL"], self.config["server"]["public_url"])

    def test_issuer_is_the_same_url_inside_and_outside(self):
        issuer = urlsplit(self.config["provider"]["issuer"])
        keycloak = self.services["keycloak"]
        self.assertEqual(f"{keycloak['environment']['KC_HOSTNAME']}/realms/internal", self.config["provider"]["issuer"])
        self.assertIn(issuer.hostname, keycloak["networks"]["default"]["aliases"])
        self.assertIn(f"--http-port={issuer.port}", keycloak["command"])
        self.assertEqual(int(self.published("keycloak", issuer.port)["published"]), issuer.port)
        self.assertIn("--import-realm", keycloak["command"])

    def test_upstreams_and_redis_are_compose_services(self):
        for route in self.config["routes"]:
            with self.subTest(route=route["name"]):
                host = urlsplit(route["upstream"]).hostname
                self.assertIn(host, self.services)
                self.assertNotIn("ports", self.services[host], f"{host} is published: it must be reachable only through the gateway")
        self.assertEqual(self.config["session"]["store"], "redis")
        self.assertIn(urlsplit(self.config["session"]["redis_url"]).hostname, self.services)
        auth = {r["name"]: r["auth"] for r in self.config["routes"]}
        self.assertEqual(auth["shop"], "login")
        self.assertEqual(auth["orders-api"], "bearer")

    def test_shop_answers_the_gateway_alone(self):
        shop = self.services["shop"]
        subnet = ipaddress.ip_network(self.model["networks"]["default"]["ipam"]["config"][0]["subnet"])
        shop_ip = ipaddress.ip_address(shop["networks"]["default"]["ipv4_address"])
        gateway_ip = ipaddress.ip_address(self.gateway["networks"]["default"]["ipv4_address"])
        self.assertIn(shop_ip, subnet)
        self.assertIn(gateway_ip, subnet)
        self.assertEqual(shop["command"][shop["command"].index("--listen") + 1].rsplit(":", 1)[0], str(shop_ip))
        networks = [ipaddress.ip_network(n) for n in shop["environment"]["PORTCULLIS_GATEWAY_NETWORKS"].split(",")]
        self.assertTrue(any(gateway_ip in n for n in networks))
        self.assertEqual(sum(n.num_addresses for n in networks), 1, "only the gateway's address")

    def test_client_secret_default_is_the_realms(self):
        realm = json.loads(read(COMPOSE_REALM))
        [client] = [c for c in realm["clients"] if c["clientId"] == self.config["provider"]["client_id"]]
        self.assertEqual(self.gateway["environment"]["PORTCULLIS_CLIENT_SECRET"], client["secret"])


class Realm(DeployCase):
    def test_compose_realm_is_what_realm_py_writes(self):
        p = run([sys.executable, os.path.join(COMPOSE, "realm.py"), "--check"])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_compose_realm_keeps_the_suites_clients_scopes_roles_and_users(self):
        suite, compose = json.loads(read(SUITE_REALM)), json.loads(read(COMPOSE_REALM))
        self.assertEqual(realm_differences(suite, compose), [])
        # The comparison sees a change in each part that matters.
        for part, change in (("clients", lambda r: r["clients"][0]["defaultClientScopes"].pop()),
                             ("clientScopes", lambda r: r["clientScopes"].pop()),
                             ("roles", lambda r: r["roles"]["realm"].pop()),
                             ("users", lambda r: r["users"][0].update(enabled=False))):
            with self.subTest(changed=part):
                changed = copy.deepcopy(compose)
                change(changed)
                self.assertEqual(realm_differences(suite, changed), [part])

    def test_compose_realm_sends_people_back_to_the_compose_gateway(self):
        config = tomllib.loads(read(os.path.join(COMPOSE, "gateway.toml")))
        public = config["server"]["public_url"]
        port = config["server"]["listen"][0].rsplit(":", 1)[1]
        compose = json.loads(read(COMPOSE_REALM))
        for client in compose["clients"]:
            if client["clientId"] not in GATEWAY_CLIENTS:
                continue
            with self.subTest(client=client["clientId"]):
                self.assertEqual(client["redirectUris"], [f"{public}/_portcullis/callback"])
                self.assertEqual(client["attributes"]["post.logout.redirect.uris"], f"{public}/*")
                if "backchannel.logout.url" in client["attributes"]:
                    # Keycloak calls it from inside the network: the gateway's service name.
                    self.assertEqual(client["attributes"]["backchannel.logout.url"],
                                     f"http://portcullis:{port}/_portcullis/backchannel-logout")
        self.assertNotIn("127.0.0.1:8080", read(COMPOSE_REALM))


if __name__ == "__main__":
    unittest.main()

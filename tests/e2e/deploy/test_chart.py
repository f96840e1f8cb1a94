"""The Helm chart in deploy/helm/portcullis: lint, the Kubernetes schemas, and the properties
of the rendered objects that keep the gateway available and contained."""

import copy
import tomllib
import unittest

import yaml

from support import CHART, HELM, KUBERNETES_VERSIONS, DeployCase, helm_template, render, run, validate

GATEWAY = "portcullis"
REDIS = "portcullis-redis"
# The chart's variants that the tests render: its defaults, Redis on, a fixed count.
VARIANTS = {
    "defaults": (),
    "redis": ("--set", "redis.enabled=true"),
    "no-autoscaling": ("--set", "autoscaling.enabled=false"),
}


def container(deployment, name):
    [c] = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return c


def port_number(c, port):
    """A probe's or policy's port (a name or a number) as the container's port number."""
    if isinstance(port, int):
        return port
    [p] = [p for p in c["ports"] if p["name"] == port]
    return p["containerPort"]


def selects(selector, labels):
    """Whether a matchLabels selector picks objects with these labels (and selects something)."""
    match = selector.get("matchLabels", {})
    return bool(match) and not selector.get("matchExpressions") and all(labels.get(k) == v for k, v in match.items())


def listen_port(addr):
    return int(addr.rsplit(":", 1)[1])


class Lint(DeployCase):
    def test_chart_lints_clean(self):
        for name, args in VARIANTS.items():
            with self.subTest(variant=name):
                p = run([HELM, "lint", "--strict", "--kube-version", KUBERNETES_VERSIONS[-1], CHART, *args])
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("0 chart(s) failed", p.stdout)


class Schemas(DeployCase):
    def test_rendered_objects_pass_the_kubernetes_schemas(self):
        for name, args in VARIANTS.items():
            rendered = render(self, *args)
            for version in KUBERNETES_VERSIONS:
                with self.subTest(variant=name, kubernetes=version):
                    code, out = validate(rendered.text, version)
                    self.assertEqual(code, 0, out)
                    # Every object was checked, none skipped for want of a schema.
                    self.assertEqual(out.count(" passed for resource "), len(rendered.objects), out)

    def test_schema_check_refuses_an_unknown_field(self):
        # The check above would pass anything if --strict did not reject unknown fields.
        rendered = render(self)
        deployment = copy.deepcopy(rendered.one("Deployment", GATEWAY))
        container(deployment, GATEWAY)["securityContext"]["readOnlyRootFilesytem"] = True  # sic
        code, out = validate(yaml.safe_dump(deployment), KUBERNETES_VERSIONS[-1])
        self.assertNotEqual(code, 0, out)
        self.assertIn("readOnlyRootFilesytem", out)


class Values(DeployCase):
    def test_fewer_than_two_replicas_is_refused(self):
        for args in (("--set", "replicaCount=1"), ("--set", "autoscaling.minReplicas=1")):
            with self.subTest(args=args):
                code, _, err = helm_template(*args)
                self.assertNotEqual(code, 0)
                self.assertIn("minimum", err)

    def test_misspelt_value_is_refused(self):
        code, _, err = helm_template("--set", "replicaCont=3")
        self.assertNotEqual(code, 0)
        self.assertIn("replicaCont", err)

    def test_redis_without_sessions_is_refused(self):
        code, _, err = helm_template("--set", "redis.enabled=true", "--set", "config.session=null")
        self.assertNotEqual(code, 0)
        self.assertIn("redis.enabled needs config.session", err)


class Availability(DeployCase):
    def test_never_fewer_than_two_gateway_pods(self):
        # Autoscaling (the default): the HPA owns the count, at least 2, and the Deployment
        # leaves `replicas` out so that an apply never resets what the HPA chose.
        rendered = render(self)
        hpa = rendered.one("HorizontalPodAutoscaler", GATEWAY)
        self.assertEqual(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY})
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertGreaterEqual(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        self.assertNotIn("replicas", rendered.one("Deployment", GATEWAY)["spec"])
        # A fixed count: the Deployment's own, at least 2, and no HPA.
        fixed = render(self, *VARIANTS["no-autoscaling"])
        self.assertGreaterEqual(fixed.one("Deployment", GATEWAY)["spec"]["replicas"], 2)
        self.assertEqual(fixed.all("HorizontalPodAutoscaler"), [])

    def test_a_drain_or_an_update_leaves_a_pod_serving(self):
        rendered = render(self, *VARIANTS["no-autoscaling"])
        deployment = rendered.one("Deployment", GATEWAY)
        pods = deployment["spec"]["template"]["metadata"]["labels"]
        pdb = rendered.one("PodDisruptionBudget", GATEWAY)
        self.assertTrue(selects(pdb["spec"]["selector"], pods), pdb["spec"]["selector"])
        self.assertLess(pdb["spec"]["maxUnavailable"], deployment["spec"]["replicas"])
        self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_probes_ask_the_admin_listener(self):
        rendered = render(self)
        c = container(rendered.one("Deployment", GATEWAY), GATEWAY)
        config = rendered.gateway_toml()
        admin = listen_port(config["admin"]["listen"])
        public = {listen_port(a) for a in config["server"]["listen"]}
        self.assertNotIn(admin, public)
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            with self.subTest(probe=probe):
                get = c[probe]["httpGet"]
                self.assertEqual(get["path"], path)
                self.assertEqual(port_number(c, get["port"]), admin)
                self.assertNotEqual(get.get("scheme", "HTTP"), "HTTPS")

    def test_config_change_rolls_the_pods(self):
        def checksum(*args):
            return render(self, *args).one("Deployment", GATEWAY)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

        self.assertEqual(checksum(), checksum())
        self.assertNotEqual(checksum(), checksum("--set", "config.session.lifetime=4h"))


class Containment(DeployCase):
    def test_pods_run_unprivileged_on_a_read_only_root(self):
        rendered = render(self, *VARIANTS["redis"])
        for name, c_name in ((GATEWAY, GATEWAY), (REDIS, "redis")):
            with self.subTest(deployment=name):
                pod = rendered.one("Deployment", name)["spec"]["template"]["spec"]
                self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
                self.assertNotEqual(pod["securityContext"]["runAsUser"], 0)
                self.assertEqual(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault")
                self.assertIs(pod["automountServiceAccountToken"], False)
                self.assertNotIn("hostNetwork", pod)
                c = container(rendered.one("Deployment", name), c_name)
                sc = c["securityContext"]
                self.assertIs(sc["readOnlyRootFilesystem"], True)
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertIs(sc.get("privileged", False), False)
                self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})

    def test_only_the_ingress_controller_reaches_the_proxy_port(self):
        rendered = render(self)
        deployment = rendered.one("Deployment", GATEWAY)
        pods = deployment["spec"]["template"]["metadata"]["labels"]
        c = container(deployment, GATEWAY)
        config = rendered.gateway_toml()
        public = {listen_port(a) for a in config["server"]["listen"]}
        admin = listen_port(config["admin"]["listen"])
        [policy] = [p for p in rendered.all("NetworkPolicy") if selects(p["spec"]["podSelector"], pods)]
        self.assertIn("Ingress", policy["spec"]["policyTypes"])
        ingress_nginx = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                         "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}
        prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
        allowed = {}  # port number -> the peers admitted to it
        for rule in policy["spec"]["ingress"]:
            # A rule without `from` admits everyone, one without `ports` every port.
            self.assertTrue(rule.get("from"), f"a rule admits every source: {rule}")
            self.assertTrue(rule.get("ports"), f"a rule admits every port: {rule}")
            for port in rule["ports"]:
                allowed.setdefault(port_number(c, port["port"]), []).extend(rule["from"])
        self.assertEqual(set(allowed), public | {admin})
        for port in public:
            self.assertEqual(allowed[port], [ingress_nginx])
        self.assertEqual(allowed[admin], [prometheus])
        # The Service an Ingress points at reaches the proxy port, and only that.
        service = rendered.one("Service", GATEWAY)
        self.assertTrue(selects({"matchLabels": service["spec"]["selector"]}, pods))
        self.assertEqual({port_number(c, p["targetPort"]) for p in service["spec"]["ports"]}, public)

    def test_policy_follows_the_ingress_controller_values(self):
        rendered = render(self, values={"networkPolicy": {"ingressController": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}}})
        [first, _] = rendered.one("NetworkPolicy", GATEWAY)["spec"]["ingress"]
        self.assertEqual(first["from"], [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}},
                                          "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}}}])


class Sessions(DeployCase):
    def test_redis_toggle_switches_the_session_store(self):
        plain = render(self)
        self.assertEqual(plain.gateway_toml()["session"]["store"], "cookie")
        self.assertNotIn("redis_url", plain.gateway_toml()["session"])
        self.assertFalse([o for o in plain.objects if o["metadata"]["name"] == REDIS])

        rendered = render(self, *VARIANTS["redis"])
        session = rendered.gateway_toml()["session"]
        self.assertEqual(session["store"], "redis")
        service = rendered.one("Service", REDIS)
        [port] = service["spec"]["ports"]
        self.assertEqual(session["redis_url"], f"redis://{REDIS}:{port['port']}")
        redis = rendered.one("Deployment", REDIS)
        redis_pods = redis["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects({"matchLabels": service["spec"]["selector"]}, redis_pods))
        # The gateway's Service must not pick the Redis pods, nor Redis' the gateway's.
        gateway_pods = rendered.one("Deployment", GATEWAY)["spec"]["template"]["metadata"]["labels"]
        self.assertFalse(selects({"matchLabels": rendered.one("Service", GATEWAY)["spec"]["selector"]}, redis_pods))
        self.assertFalse(selects({"matchLabels": service["spec"]["selector"]}, gateway_pods))
        # Only the gateway's pods reach Redis.
        policy = rendered.one("NetworkPolicy", REDIS)
        self.assertTrue(selects(policy["spec"]["podSelector"], redis_pods))
        [rule] = policy["spec"]["ingress"]
        [peer] = rule["from"]
        self.assertEqual(list(peer), ["podSelector"])
        self.assertTrue(selects(peer["podSelector"], gateway_pods))
        self.assertFalse(selects(peer["podSelector"], redis_pods))

    def test_secrets_come_from_the_existing_secret_only(self):
        rendered = render(self, "--set", "secrets.existingSecret=gw-secrets",
                          "--set", "secrets.previousSessionSecretKey=session-secret-old")
        self.assertEqual(rendered.all("Secret"), [])
        env = {e["name"]: e for e in container(rendered.one("Deployment", GATEWAY), GATEWAY)["env"]}
        for name, key in (("PORTCULLIS_CLIENT_SECRET", "client-secret"),
                          ("PORTCULLIS_SESSION_SECRET", "session-secret"),
                          ("PORTCULLIS_SESSION_SECRET_OLD", "session-secret-old")):
            with self.subTest(env=name):
                self.assertEqual(env[name]["valueFrom"], {"secretKeyRef": {"name": "gw-secrets", "key": key}})
                self.assertNotIn("value", env[name])
        config = rendered.gateway_toml()
        self.assertEqual(config["provider"]["client_secret"], "${PORTCULLIS_CLIENT_SECRET}")
        self.assertEqual(config["session"]["secrets"], ["${PORTCULLIS_SESSION_SECRET}", "${PORTCULLIS_SESSION_SECRET_OLD}"])


class GatewayToml(DeployCase):
    def test_values_cannot_break_out_of_a_toml_string(self):
        # A value with quotes, a backslash, a newline and TOML syntax stays one string.
        tricky = 'a"b\\c\n[admin]\nlisten = "0.0.0.0:1"'
        routes = [{"name": tricky, "path": "/", "upstream": "http://app:80", "auth": "login",
                   "scopes": {"*": ["x"], "DELETE": ["y"]}, "allow": {"roles": ["r"]}}]
        config = render(self, values={"config": {"routes": routes}}).gateway_toml()
        [route] = config["routes"]
        self.assertEqual(route["name"], tricky)
        self.assertEqual(route["scopes"], {"*": ["x"], "DELETE": ["y"]})
        self.assertEqual(config["admin"]["listen"], "0.0.0.0:9901")

    def test_chart_owns_the_listen_addresses(self):
        config = render(self, values={"ports": {"http": 8443, "admin": 9443},
                                      "config": {"server": {"listen": ["127.0.0.1:1"]}}}).gateway_toml()
        self.assertEqual(config["server"]["listen"], ["0.0.0.0:8443"])
        self.assertEqual(config["admin"]["listen"], "0.0.0.0:9443")

    def test_rendering_is_valid_toml_for_every_variant(self):
        for name, args in VARIANTS.items():
            with self.subTest(variant=name):
                text = render(self, *args).gateway_toml_text()
                self.assertIsInstance(tomllib.loads(text), dict)
                self.assertFalse([line for line in text.splitlines() if line != line.rstrip()],
                                 "trailing blanks in gateway.toml")


if __name__ == "__main__":
    unittest.main()

"""`portcullis check` accepts every gateway configuration that deploy/ ships: each
gateway.toml file, each ConfigMap holding one, and what the chart renders, with the
${NAME}s each reads set to test values."""

import glob
import os
import unittest

import yaml

from support import DEPLOY, ROOT, read, TEST_SECRET, DeployCase, check_config, check_config_text, env_references, render


def configs_in_deploy():
    """(label, text, path or None) for every gateway configuration under deploy/: the
    gateway.toml files, and the gateway.toml key of every ConfigMap in a YAML file (the
    chart's templates are not YAML until rendered: they are checked through render())."""
    found = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "**", "gateway.toml"), recursive=True)):
        if "/.venv/" in path:
            continue
        found.append((os.path.relpath(path, ROOT), read(path), path))
    for path in sorted(glob.glob(os.path.join(DEPLOY, "**", "*.y*ml"), recursive=True)):
        rel = os.path.relpath(path, ROOT)
        if rel.startswith("deploy/helm/") or "/.venv/" in path:
            continue
        for doc in yaml.safe_load_all(read(path)):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap" and "gateway.toml" in (doc.get("data") or {}):
                found.append((f"{rel} ({doc['metadata']['name']})", doc["data"]["gateway.toml"], None))
    return found


def test_env(text):
    return {name: TEST_SECRET for name in env_references(text)}


class EveryConfig(DeployCase):
    def check(self, label, text, path):
        p = check_config(path, test_env(text)) if path else check_config_text(text, test_env(text))
        self.assertEqual(p.returncode, 0, f"{label}:\n{p.stdout}{p.stderr}")
        self.assertIn(": OK", p.stdout, p.stdout)

    def test_every_gateway_config_in_deploy_passes_check(self):
        for label, text, path in configs_in_deploy():
            with self.subTest(config=label):
                self.check(label, text, path)

    def test_chart_renders_configs_that_pass_check(self):
        for label, args in (("defaults", ()), ("redis", ("--set", "redis.enabled=true")),
                            ("rotation", ("--set", "secrets.previousSessionSecretKey=old"))):
            with self.subTest(chart=label):
                self.check(f"chart ({label})", render(self, *args).gateway_toml_text(), None)

    def test_the_search_finds_the_configs_deploy_is_known_to_ship(self):
        # A search that found nothing would make the check above pass vacuously.
        labels = [label for label, _, _ in configs_in_deploy()]
        for expected in ("deploy/compose/gateway.toml", "deploy/forward-auth/gateway.toml",
                         "deploy/examples/django/gateway.toml", "deploy/kubernetes/configmap.yaml (portcullis-config)"):
            self.assertIn(expected, labels)

    def test_check_fails_when_a_secret_a_config_reads_is_unset(self):
        # Proves the environment given is what check reads: without one of the secrets the
        # same configuration is refused, naming the variable.
        label, text, path = next(c for c in configs_in_deploy() if c[0] == "deploy/kubernetes/configmap.yaml (portcullis-config)")
        env = test_env(text)
        self.assertIn("PORTCULLIS_SESSION_SECRET", env)
        del env["PORTCULLIS_SESSION_SECRET"]
        p = check_config_text(text, env)
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("PORTCULLIS_SESSION_SECRET", p.stderr)


if __name__ == "__main__":
    unittest.main()

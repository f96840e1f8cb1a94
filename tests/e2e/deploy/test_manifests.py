"""The plain manifests in deploy/kubernetes: rendered from the chart, never edited apart
from it, and valid on their own."""

import glob
import os
import shutil
import tempfile
import unittest

import yaml

from support import HELM, KUBERNETES, KUBERNETES_VERSIONS, DeployCase, read, run, validate

RENDER = os.path.join(KUBERNETES, "render.sh")
HEADER = "# Rendered from deploy/helm/portcullis"


def render_check(directory):
    return run(["bash", RENDER, "--check", directory], env={**os.environ, "HELM": HELM})


def manifests():
    """The Kubernetes objects of deploy/kubernetes (values.yaml is the chart's input, not one)."""
    return sorted(f for f in glob.glob(os.path.join(KUBERNETES, "*.yaml")) if os.path.basename(f) != "values.yaml")


class Drift(DeployCase):
    def test_plain_manifests_are_what_the_chart_renders_now(self):
        p = render_check(KUBERNETES)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        rendered = [f for f in manifests() if read(f).startswith(HEADER)]
        self.assertEqual(sorted(os.path.basename(f) for f in rendered),
                         ["configmap.yaml", "deployment.yaml", "networkpolicy.yaml", "pdb.yaml", "service.yaml"])

    def test_drift_check_notices_an_edit_a_missing_file_and_a_stale_one(self):
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, "kubernetes")
            shutil.copytree(KUBERNETES, copy)
            self.assertEqual(render_check(copy).returncode, 0)

            path = os.path.join(copy, "deployment.yaml")
            text = read(path)
            with open(path, "w") as f:
                f.write(text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"))
            p = render_check(copy)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("-            readOnlyRootFilesystem: false", p.stdout)
            with open(path, "w") as f:
                f.write(text)

            os.remove(os.path.join(copy, "pdb.yaml"))
            p = render_check(copy)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("pdb.yaml is missing", p.stdout)
            shutil.copy(os.path.join(KUBERNETES, "pdb.yaml"), copy)

            shutil.copy(os.path.join(KUBERNETES, "pdb.yaml"), os.path.join(copy, "hpa-old.yaml"))
            p = render_check(copy)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("hpa-old.yaml is rendered, but the chart no longer makes it", p.stdout)


class Valid(DeployCase):
    def test_plain_manifests_pass_the_kubernetes_schemas(self):
        text = "\n---\n".join(read(f) for f in manifests())
        count = sum(1 for o in yaml.safe_load_all(text) if o)
        for version in KUBERNETES_VERSIONS:
            with self.subTest(kubernetes=version):
                code, out = validate(text, version)
                self.assertEqual(code, 0, out)
                self.assertEqual(out.count(" passed for resource "), count, out)

    def test_example_secret_has_what_the_deployment_reads(self):
        secret = yaml.safe_load(read(os.path.join(KUBERNETES, "secret.example.yaml")))
        deployment = yaml.safe_load(read(os.path.join(KUBERNETES, "deployment.yaml")))
        [c] = deployment["spec"]["template"]["spec"]["containers"]
        refs = [e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e]
        self.assertTrue(refs)
        for ref in refs:
            with self.subTest(key=ref["key"]):
                self.assertEqual(ref["name"], secret["metadata"]["name"])
                self.assertIn(ref["key"], secret["stringData"])


if __name__ == "__main__":
    unittest.main()

"""What the deploy tests share: paths, helm, kubernetes-validate and `portcullis check`.

Everything runs from the files in the work tree: the chart in deploy/helm/portcullis is
rendered with helm (built by install.sh), the objects are parsed with PyYAML, and the
gateway binary is the release build (target/release/portcullis, or $PORTCULLIS_BIN).
"""

import json
import os
import re
import subprocess
import tempfile
import tomllib
import unittest

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CHART = os.path.join(DEPLOY, "helm", "portcullis")
KUBERNETES = os.path.join(DEPLOY, "kubernetes")
HELM = os.environ.get("HELM", os.path.join(HERE, ".cache", "helm-v3.22.0", "helm"))
VALIDATE = os.path.join(HERE, ".venv", "bin", "kubernetes-validate")
COMPOSE_CONFIG = os.path.join(HERE, ".cache", "compose-config", "compose-config")
HADOLINT = os.path.join(HERE, ".venv", "bin", "hadolint")
PORTCULLIS = os.environ.get("PORTCULLIS_BIN", os.path.join(ROOT, "target", "release", "portcullis"))

# The oldest and the newest Kubernetes whose schemas kubernetes-validate 1.37.0 ships that
# the chart is checked against (its Chart.yaml asks for >= 1.25).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

# A value for every ${NAME} a configuration reads: long enough to be a session secret.
TEST_SECRET = "test-only-not-a-secret-0123456789abcdefghijklmnop"

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def run(args, **kwargs):
    """Runs a command, bounded in time, and returns the CompletedProcess (text)."""
    kwargs.setdefault("timeout", 120)
    return subprocess.run(args, capture_output=True, text=True, **kwargs)


def require_tools(case):
    install = "bash tests/e2e/deploy/install.sh"
    for tool, how in ((HELM, install), (VALIDATE, install), (COMPOSE_CONFIG, install), (HADOLINT, install),
                      (PORTCULLIS, "cargo build --release --locked")):
        if not os.access(tool, os.X_OK):
            case.fail(f"{tool} is missing: {how}")


# ------------------------------------------------------------------ helm

def helm_template(*args, values=None):
    """`helm template portcullis CHART ARGS...`: (returncode, stdout, stderr).

    values: a dict written to a values file and passed with -f (after the chart's own), as
    JSON: YAML would let helm read a bare `y` or `on` as a boolean."""
    cmd = [HELM, "template", "portcullis", CHART, "--kube-version", KUBERNETES_VERSIONS[-1], *args]
    with tempfile.TemporaryDirectory() as tmp:
        if values is not None:
            path = os.path.join(tmp, "values.json")
            with open(path, "w") as f:
                json.dump(values, f)
            cmd += ["-f", path]
        p = run(cmd)
    return p.returncode, p.stdout, p.stderr


def render(case, *args, values=None):
    """The objects the chart renders, parsed; fails the test when helm refuses."""
    code, out, err = helm_template(*args, values=values)
    case.assertEqual(code, 0, f"helm template {' '.join(args)} failed:\n{err}")
    return Rendered(out)


class Rendered:
    """Rendered manifests: the text and the parsed objects."""

    def __init__(self, text):
        self.text = text
        self.objects = [o for o in yaml.safe_load_all(text) if o]

    def all(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind, name):
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} {kind} named {name} in: "
                                 f"{[(o['kind'], o['metadata']['name']) for o in self.objects]}")
        return found[0]

    def gateway_toml_text(self, name="portcullis-config"):
        return self.one("ConfigMap", name)["data"]["gateway.toml"]

    def gateway_toml(self, name="portcullis-config"):
        return tomllib.loads(self.gateway_toml_text(name))


def validate(text, version, strict=True):
    """kubernetes-validate on manifests given as text: (returncode, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        args = [VALIDATE, "-k", version, *(["--strict"] if strict else []), f.name]
        p = run(args)
    return p.returncode, p.stdout + p.stderr


# ------------------------------------------------------------------ portcullis check

def env_references(text):
    """The ${NAME}s a configuration reads, in order of first use."""
    return list(dict.fromkeys(ENV_REFERENCE.findall(text)))


def check_config(path, env=None):
    """`portcullis check -c PATH` with only PATH, HOME and `env` in its environment."""
    base = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return run([PORTCULLIS, "check", "-c", path], env={**base, **(env or {})}, timeout=60)


def check_config_text(text, env=None, name="gateway.toml"):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return check_config(path, env)


class DeployCase(unittest.TestCase):
    def setUp(self):
        require_tools(self)

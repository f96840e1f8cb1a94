"""The Dockerfiles and the systemd unit in deploy/: what can be checked without a
container engine and without systemd running as PID 1."""

import glob
import os
import shutil
import tempfile
import unittest

from support import DEPLOY, HADOLINT, PORTCULLIS, ROOT, DeployCase, read, run

UNIT = os.path.join(DEPLOY, "systemd", "portcullis.service")
INSTALLED_BINARY = "/usr/local/bin/portcullis"
# `systemd-analyze security` scores 0 (locked down) to 10 (exposed); the unit scored 1.5.
MAX_EXPOSURE = 2.0


def dockerfiles():
    found = glob.glob(os.path.join(DEPLOY, "**", "Dockerfile"), recursive=True)
    found += glob.glob(os.path.join(DEPLOY, "**", "*.Dockerfile"), recursive=True)
    return sorted(f for f in found if "/.venv/" not in f)


def unit_for_verify(tmp, text):
    """The unit with its binary where this work tree builds it: verify checks that every
    Exec*= command exists, and nothing is installed in /usr/local/bin here."""
    path = os.path.join(tmp, "portcullis.service")
    with open(path, "w") as f:
        f.write(text.replace(INSTALLED_BINARY, PORTCULLIS))
    return path


class Dockerfiles(DeployCase):
    def test_dockerfiles_pass_hadolint(self):
        found = dockerfiles()
        self.assertEqual([os.path.relpath(f, ROOT) for f in found], ["deploy/Dockerfile", "deploy/compose/shop.Dockerfile"])
        for path in found:
            with self.subTest(dockerfile=os.path.relpath(path, ROOT)):
                p = run([HADOLINT, "--no-color", path])
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_hadolint_flags_a_root_user_and_an_unpinned_image(self):
        with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile") as f:
            f.write(read(dockerfiles()[0]).replace("FROM debian:bookworm-slim", "FROM debian") + "\nUSER root\n")
            f.flush()
            p = run([HADOLINT, "--no-color", f.name])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("DL3002", p.stdout)  # last USER should not be root
        self.assertIn("DL3006", p.stdout)  # always tag the version of an image


class SystemdUnit(DeployCase):
    def setUp(self):
        super().setUp()
        if not shutil.which("systemd-analyze"):
            self.fail("systemd-analyze is missing: bash tests/e2e/deploy/install.sh")

    def verify(self, text):
        with tempfile.TemporaryDirectory() as tmp:
            return run(["systemd-analyze", "verify", unit_for_verify(tmp, text)])

    def test_unit_passes_systemd_analyze_verify(self):
        p = self.verify(read(UNIT))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # An unknown or misspelt key is only a warning (exit 0): none may be printed.
        self.assertEqual(p.stdout + p.stderr, "")

    def test_verify_reports_a_misspelt_key(self):
        p = self.verify(read(UNIT).replace("KillSignal=SIGTERM", "KillSignl=SIGTERM"))
        self.assertIn("Unknown key 'KillSignl'", p.stdout + p.stderr)

    def test_unit_stays_locked_down(self):
        p = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        [line] = [l for l in p.stdout.splitlines() if "Overall exposure level" in l]
        exposure = float(line.split(":")[1].split()[0])
        self.assertLessEqual(exposure, MAX_EXPOSURE, line)

    def test_unit_checks_the_config_before_it_starts(self):
        lines = read(UNIT).splitlines()
        self.assertIn(f"ExecStartPre={INSTALLED_BINARY} check -c /etc/portcullis/gateway.toml", lines)
        self.assertIn("RestartPreventExitStatus=2", lines)


if __name__ == "__main__":
    unittest.main()

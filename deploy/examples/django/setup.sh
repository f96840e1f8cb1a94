#!/usr/bin/env bash
# Creates (or refreshes) the virtualenv of the Django example.
#
#   bash deploy/examples/django/setup.sh     # quiet; exit status != 0 on failure
#
# Idempotent: the venv at deploy/examples/django/.venv (git-ignored) is rebuilt from
# scratch only when it is missing, broken, or when requirements.txt or the base interpreter
# changed (a sha256 stamp inside the venv records what it was built from). Otherwise it
# does nothing and asks no registry. The work is tests/e2e/venv.sh's (shared with the
# test suites' venvs).
#
# Needs python3 (>= 3.10) with the venv module, and PyPI. On a Debian system python
# `python3 -m venv` needs the package python3-venv. PYTHON=/path/to/python3 picks another
# interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../../tests/e2e/venv.sh" --name django/setup.sh "$here/.venv" "$here/requirements.txt" \
    "$here/.venv/bin/python" -c 'import django, rest_framework, waitress, whitenoise'

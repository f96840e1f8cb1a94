#!/usr/bin/env bash
# Creates (or refreshes) the virtualenv for the django-oauth-toolkit test server.
#
#   bash tests/e2e/dot/setup.sh          # quiet; exit status != 0 on failure
#
# Idempotent: the venv at tests/e2e/dot/.venv is rebuilt from scratch only when it is
# missing, broken, or when requirements.txt / the base interpreter changed (a sha256
# stamp inside the venv records what it was built from). Otherwise it does nothing.
# The work is ../venv.sh's (shared with the other Python venvs of the tests).
#
# Needs python3 (>= 3.10) with the venv module and network access to PyPI. On a Debian
# system python (not this machine's pyenv one) `python3 -m venv` needs the Debian
# package python3-venv. Set PYTHON=/path/to/python3 to pick another interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../venv.sh" --name dot/setup.sh "$here/.venv" "$here/requirements.txt" \
    "$here/.venv/bin/python" -c 'import django, oauth2_provider, waitress'

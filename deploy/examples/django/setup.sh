#!/usr/bin/env bash
# Creates (or refreshes) the virtualenv of the Django example.
#
#   bash deploy/examples/django/setup.sh     # quiet; exit status != 0 on failure
#
# Idempotent: the venv at deploy/examples/django/.venv (git-ignored) is rebuilt from
# scratch only when it is missing, broken, or when requirements.txt or the base interpreter
# changed (a sha256 stamp inside the venv records what it was built from). Otherwise it
# does nothing and asks no registry.
#
# Needs python3 (>= 3.10) with the venv module, and PyPI. On a Debian system python
# `python3 -m venv` needs the package python3-venv. PYTHON=/path/to/python3 picks another
# interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
stamp="$venv/.portcullis-requirements.sha256"
python="${PYTHON:-python3}"
imports='import django, rest_framework, waitress, whitenoise'

die() { echo "django/setup.sh: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON=...)"
[ -f "$req" ] || die "missing $req"

# One setup at a time (parallel runs share the venv).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$here/.setup.lock"
    flock 9
fi

py_id="$("$python" -c 'import sys; print(sys.version); print(sys.base_prefix)')" \
    || die "'$python' does not run"
want="$( { cat "$req"; echo "$py_id"; } | sha256sum | cut -d' ' -f1)"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
    && "$venv/bin/python" -c "$imports" >/dev/null 2>&1; then
    exit 0
fi

rm -rf "$venv"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$python" -m venv "$venv" >"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$venv"
    die "'$python -m venv' failed (on Debian's system python: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$req" >"$log" 2>&1; then
    cat "$log" >&2
    rm -rf "$venv"
    die "pip install -r requirements.txt failed"
fi
"$venv/bin/python" -c "$imports" \
    || { rm -rf "$venv"; die "the new venv cannot $imports"; }
echo "$want" >"$stamp"

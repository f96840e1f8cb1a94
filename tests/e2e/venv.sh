#!/usr/bin/env bash
# Makes (or refreshes) a virtualenv from a pinned requirements.txt; the one copy of this
# logic behind tests/e2e/dot/setup.sh, tests/e2e/forward-auth/install.sh and
# deploy/examples/django/setup.sh.
#
#   bash tests/e2e/venv.sh [--name NAME] [--check] VENV REQUIREMENTS [CHECK-COMMAND...]
#
# Idempotent: VENV is rebuilt from scratch only when it is missing, broken (CHECK-COMMAND
# fails), or when REQUIREMENTS or the base interpreter
# changed (a sha256 stamp inside the venv records what it was built from). Otherwise it
# does nothing, prints nothing and asks no registry. A failed build leaves no venv.
#
#   --name NAME   the prefix of error messages (default: venv.sh)
#   --check       build nothing: exit 0 when VENV is up to date, 1 when it would be rebuilt
#
# e.g. tests/e2e/venv.sh "$here/.venv" "$here/requirements.txt" "$here/.venv/bin/python" -c 'import django'
#
# Needs python3 (>= 3.10) with the venv module, and PyPI for a build. On a Debian system
# python `python3 -m venv` needs the package python3-venv. PYTHON=/path/to/python3 picks
# another interpreter. Builds of one VENV take turns (flock on VENV.lock).
set -euo pipefail

name="venv.sh"
check_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --check) check_only=1; shift ;;
        *) break ;;
    esac
done
die() { echo "$name: $*" >&2; exit 1; }
[ $# -ge 2 ] || die "usage: venv.sh [--name NAME] [--check] VENV REQUIREMENTS [CHECK-COMMAND...]"

venv="$1"
req="$2"
shift 2
check=("$@")
stamp="$venv/.portcullis-requirements.sha256"
python="${PYTHON:-python3}"

command -v "$python" >/dev/null 2>&1 || die "'$python' not found (set PYTHON=...)"
[ -f "$req" ] || die "missing $req"

py_id="$("$python" -c 'import sys; print(sys.version); print(sys.base_prefix)')" \
    || die "'$python' does not run"
want="$( { cat "$req"; echo "$py_id"; } | sha256sum | cut -d' ' -f1)"

passes_check() {
    [ ${#check[@]} -eq 0 ] || "${check[@]}" >/dev/null 2>&1
}
up_to_date() {
    [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && passes_check
}

if [ "$check_only" = 1 ]; then
    if up_to_date; then exit 0; else exit 1; fi
fi

# One build at a time (parallel test runs share the venv); then look again, as the run
# that held the lock may just have built it.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$venv.lock"
    flock 9
fi
if up_to_date; then
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
    die "pip install -r $(basename "$req") failed"
fi
passes_check || { rm -rf "$venv"; die "the new venv fails its check: ${check[*]}"; }
echo "$want" >"$stamp"

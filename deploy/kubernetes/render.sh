#!/usr/bin/env bash
# Renders the plain manifests of this folder from the Helm chart:
#
#   helm template portcullis deploy/helm/portcullis -f deploy/kubernetes/values.yaml
#
# split into one file per template (configmap.yaml, deployment.yaml, ...), each headed by a
# line saying so. secret.example.yaml is not rendered (the chart only references a Secret).
#
#   deploy/kubernetes/render.sh              rewrite the rendered files here (and remove
#                                            rendered files the chart no longer makes)
#   deploy/kubernetes/render.sh --check      change nothing; exit 1 with a diff when the
#                                            files here differ from what the chart renders
#   deploy/kubernetes/render.sh [--check] DIR   the same for the files in DIR
#
# HELM=/path/to/helm picks the binary; the default is the one tests/e2e/deploy/install.sh
# builds (helm v3.22.0).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
dir="${1:-$root/deploy/kubernetes}"
helm="${HELM:-$root/tests/e2e/deploy/.cache/helm-v3.22.0/helm}"
header="# Rendered from deploy/helm/portcullis with deploy/kubernetes/values.yaml by deploy/kubernetes/render.sh: change those and run it, never this file."

die() { echo "render.sh: $*" >&2; exit 1; }
[ -x "$helm" ] || die "no helm at $helm (bash tests/e2e/deploy/install.sh builds it, or set HELM=)"
[ -d "$dir" ] || die "no folder $dir"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$helm" template portcullis "$root/deploy/helm/portcullis" \
    -f "$root/deploy/kubernetes/values.yaml" --kube-version 1.37.0 >"$out/all.yaml"

# "---" then "# Source: portcullis/templates/NAME.yaml" starts each document; documents of
# one template go to one file, separated by "---".
mkdir "$out/files"
awk -v dir="$out/files" -v header="$header" '
    /^---$/ { pending = 1; next }
    /^# Source: / {
        n = split($3, parts, "/"); file = dir "/" parts[n]
        if (file in seen) print "---" > file
        else { print header > file; seen[file] = 1 }
        pending = 0; next
    }
    { if (file == "") next; print > file }
' "$out/all.yaml"
ls "$out/files"/*.yaml >/dev/null 2>&1 || die "helm template rendered nothing"

# The rendered files already in DIR: the ones whose first line is the header.
stale=()
for f in "$dir"/*.yaml; do
    [ -e "$f" ] || continue
    [ "$(head -n 1 "$f")" = "$header" ] || continue
    [ -e "$out/files/$(basename "$f")" ] || stale+=("$f")
done

if [ "$check" = 1 ]; then
    differ=0
    for f in "$out/files"/*.yaml; do
        name="$(basename "$f")"
        if ! diff -u --label "$dir/$name (committed)" --label "$name (rendered now)" \
                "$dir/$name" "$f" 2>/dev/null; then
            [ -e "$dir/$name" ] || echo "render.sh: $dir/$name is missing"
            differ=1
        fi
    done
    for f in "${stale[@]}"; do
        echo "render.sh: $f is rendered, but the chart no longer makes it"
        differ=1
    done
    [ "$differ" = 0 ] || die "$dir differs from what the chart renders: run deploy/kubernetes/render.sh"
    exit 0
fi

for f in "${stale[@]}"; do rm -f "$f"; done
for f in "$out/files"/*.yaml; do cp "$f" "$dir/$(basename "$f")"; done

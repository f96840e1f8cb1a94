#!/usr/bin/env bash
# Installs the pinned Keycloak server distribution for the real-Keycloak suite, once:
# downloaded from Maven Central with Maven, its SHA-256 checked against the value below,
# unpacked in tests/e2e/keycloak/.cache/ (git-ignored). A second run downloads nothing and
# prints one line. Prints the Keycloak home on the last line.
#
#   tests/e2e/keycloak/install.sh            # install (idempotent)
#   KEYCLOAK_VERSION=26.5.6 KEYCLOAK_SHA256=… tests/e2e/keycloak/install.sh   # another pin
set -euo pipefail

VERSION="${KEYCLOAK_VERSION:-26.7.3}"
# sha256sum of keycloak-quarkus-dist-26.7.3.tar.gz as Maven Central serves it.
SHA256="${KEYCLOAK_SHA256:-77657f30b7e90d70f727712ce1c967f430fd6a5e9f458d32d8c6df0635345f47}"
ARTIFACT="org.keycloak:keycloak-quarkus-dist:${VERSION}:tar.gz"
JAVA_HOME="${KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/.cache"
TARBALL="$CACHE/keycloak-quarkus-dist-${VERSION}.tar.gz"
HOME_DIR="$CACHE/keycloak-${VERSION}"
STAMP="$HOME_DIR/.portcullis-installed"   # written last: a half-done install is redone

if [[ ! -x "$JAVA_HOME/bin/java" ]]; then
  echo "install.sh: Keycloak $VERSION needs Java 21+; $JAVA_HOME/bin/java is missing (set KEYCLOAK_JAVA_HOME)" >&2
  exit 1
fi

if [[ -f "$STAMP" ]]; then
  echo "keycloak $VERSION already installed: $HOME_DIR"
  exit 0
fi

mkdir -p "$CACHE"
verify() { echo "$SHA256  $1" | sha256sum --check --status; }

if [[ ! -f "$TARBALL" ]] || ! verify "$TARBALL"; then
  command -v mvn >/dev/null || { echo "install.sh: mvn is missing (apt-get install maven)" >&2; exit 1; }
  rm -f "$TARBALL"
  started=$SECONDS
  mvn -B -Dstyle.color=never dependency:copy -Dartifact="$ARTIFACT" -DoutputDirectory="$CACHE" \
    -Dmdep.overWriteReleases=true >"$CACHE/mvn.log" 2>&1 \
    || { cat "$CACHE/mvn.log" >&2; echo "install.sh: mvn could not fetch $ARTIFACT" >&2; exit 1; }
  echo "downloaded $ARTIFACT in $((SECONDS - started)) s"
  if ! verify "$TARBALL"; then
    echo "install.sh: $TARBALL does not have the pinned SHA-256 $SHA256 (got $(sha256sum "$TARBALL" | cut -d' ' -f1)); removed" >&2
    rm -f "$TARBALL"
    exit 1
  fi
fi

started=$SECONDS
rm -rf "$HOME_DIR" "$HOME_DIR.tmp"
mkdir -p "$HOME_DIR.tmp"
tar -xzf "$TARBALL" -C "$HOME_DIR.tmp" --strip-components=1
mv "$HOME_DIR.tmp" "$HOME_DIR"
rm -rf "$HOME_DIR/data"

# start-dev re-augments Quarkus (30-40 s) whenever the persisted build is not a dev build
# with the same build options, and `kc.sh build` only makes production builds. So run
# start-dev once, with the build options keycloak.mjs uses (--db=dev-mem), until the server
# relaunches itself after persisting its build, then stop it: every later start skips it.
warm="$CACHE/warmup"
rm -rf "$warm" && mkdir -p "$warm"
setsid env JAVA_HOME="$JAVA_HOME" JAVA_OPTS_KC_HEAP="-Xms64m -Xmx512m" \
  "$HOME_DIR/bin/kc.sh" start-dev --db=dev-mem --http-host=127.0.0.1 --http-port=0 \
  "-Dquarkus.transaction-manager.object-store.directory=$warm/transaction-logs" \
  >"$warm/kc.log" 2>&1 </dev/null &
pid=$!
for ((i = 0; i < 1200; i++)); do   # at most 10 minutes
  if grep -q -e 'Running the server in development mode' -e 'Listening on' "$warm/kc.log"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$warm/kc.log" >&2; echo "install.sh: kc.sh start-dev exited during its first build" >&2; exit 1
  fi
  sleep 0.5
done
kill -TERM -- "-$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if ! grep -q 'augmentation completed' "$warm/kc.log"; then
  cat "$warm/kc.log" >&2; echo "install.sh: the dev build was not persisted" >&2; exit 1
fi
rm -rf "$warm"

touch "$STAMP"
echo "installed keycloak $VERSION in $((SECONDS - started)) s: $HOME_DIR"

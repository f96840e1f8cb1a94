#!/usr/bin/env bash
# Load benchmark: how does a public route through Portcullis compare with nginx
# proxy_pass to the same backend, and with the backend directly?
#
#   benches/load/run.sh                 GET /bench through each target
#   benches/load/run.sh --body 1m       POST a 1 MiB body through each target (streaming)
#
# Environment (defaults in brackets):
#   GW_THREADS [1]    the gateway's `threads`, and nginx's `worker_processes`
#   CONNS      [32]   wrk connections (wrk always runs with one thread, -t1)
#   DURATION   [10s]  each measured wrk run (at most 300s)
#   ROUNDS     [2]    rounds; each round measures every target once (at most 10)
#   WARMUP     [2s]   an unmeasured wrk run against each target before round 1
#   NGINX_BODY_BUFFER [64k]  nginx's client_body_buffer_size: with request buffering off
#                     it is the piece size nginx streams a body in (pingora reads 64 KiB)
#   GW_LOG     [warn] the gateway's log filter (PORTCULLIS_LOG); `info` adds the per-request
#                     access line, which nginx has off here (access_log off)
#   PORTCULLIS_BIN    the binary [target/release/portcullis of this repository]
#   KEEP_TMP   [0]    1 keeps the temp dir (configs, logs, raw wrk output)
#
# Three targets, all on 127.0.0.1 and all ending at the same `portcullis echo` backend:
#   direct      the backend itself (the ceiling)
#   nginx       nginx proxy_pass, upstream keepalive 64, HTTP/1.1 to the backend
#   portcullis  the gateway, one `auth = "public"` route to the backend
# The targets are measured in rounds, in an order that rotates each round, so that drift
# (thermal, noisy neighbours, page cache) falls on all of them alike. wrk shares the two
# cores with what it measures: compare the ratios printed by one run, never absolute
# figures across runs or machines.
#
# Installs nothing. Needs wrk, nginx, curl, ss (iproute2), timeout (coreutils), awk.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HOST=127.0.0.1            # the only address this script ever starts or targets
BENCH_PATH=/bench

die() { echo "run.sh: $*" >&2; exit 1; }

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit "${1:-0}"
}

# ---------------------------------------------------------------- arguments, environment

MODE=get
BODY_BYTES=0
BODY_LABEL=
while (($#)); do
    case "$1" in
        --body)
            [[ $# -ge 2 ]] || die "--body needs a size, e.g. --body 1m"
            BODY_LABEL=$2
            shift 2
            ;;
        --body=*) BODY_LABEL=${1#--body=}; shift ;;
        -h | --help) usage 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage 2 ;;
    esac
done
if [[ -n $BODY_LABEL ]]; then
    MODE=body
    [[ $BODY_LABEL =~ ^([0-9]+)([kKmM]?)$ ]] || die "--body: a size such as 1m, 64k or 1048576, got '$BODY_LABEL'"
    BODY_BYTES=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in
        k | K) BODY_BYTES=$((BODY_BYTES * 1024)) ;;
        m | M) BODY_BYTES=$((BODY_BYTES * 1024 * 1024)) ;;
    esac
    ((BODY_BYTES >= 1 && BODY_BYTES <= 64 * 1024 * 1024)) || die "--body: between 1 byte and 64m, got '$BODY_LABEL'"
fi

# One gateway thread by default: the machine has 2 cores and they are shared by wrk (one
# thread, busy all the time), the echo backend and the proxy under test. A proxy given more
# threads than the cores left to it only adds contention and context switches, and the
# result would measure the scheduler rather than the proxy. nginx gets the same number of
# worker processes, so both proxies have the same share of the machine. On a bigger machine
# (or with wrk elsewhere) raise GW_THREADS.
GW_THREADS=${GW_THREADS:-1}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
WARMUP=${WARMUP:-2s}
GW_LOG=${GW_LOG:-warn}
NGINX_BODY_BUFFER=${NGINX_BODY_BUFFER:-64k}
KEEP_TMP=${KEEP_TMP:-0}
BIN=${PORTCULLIS_BIN:-$ROOT/target/release/portcullis}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
# wrk durations: a number with an optional unit s, m, h (none = seconds). Prints seconds.
seconds() {
    [[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
    case ${BASH_REMATCH[2]} in
        m) echo $((BASH_REMATCH[1] * 60)) ;;
        h) echo $((BASH_REMATCH[1] * 3600)) ;;
        *) echo "${BASH_REMATCH[1]}" ;;
    esac
}
is_uint "$GW_THREADS" && ((GW_THREADS >= 1 && GW_THREADS <= 64)) || die "GW_THREADS: 1..64, got '$GW_THREADS'"
is_uint "$CONNS" && ((CONNS >= 1 && CONNS <= 10000)) || die "CONNS: 1..10000, got '$CONNS'"
is_uint "$ROUNDS" && ((ROUNDS >= 1 && ROUNDS <= 10)) || die "ROUNDS: 1..10, got '$ROUNDS'"
DUR_S=$(seconds "$DURATION") && ((DUR_S >= 1 && DUR_S <= 300)) || die "DURATION: 1s..300s (e.g. 10s, 2m), got '$DURATION'"
WARM_S=$(seconds "$WARMUP") && ((WARM_S <= 60)) || die "WARMUP: 0s..60s, got '$WARMUP'"
[[ $NGINX_BODY_BUFFER =~ ^[1-9][0-9]*[kKmM]?$ ]] || die "NGINX_BODY_BUFFER: an nginx size such as 16k or 1m, got '$NGINX_BODY_BUFFER'"

# ---------------------------------------------------------------- what must be installed

missing=()
command -v wrk >/dev/null || missing+=("wrk (Debian/Ubuntu: apt-get install wrk)")
NGINX=$(command -v nginx || true)
[[ -n $NGINX ]] || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; }
[[ -n $NGINX ]] || missing+=("nginx (Debian/Ubuntu: apt-get install nginx-light; the service need not run)")
command -v curl >/dev/null || missing+=("curl (apt-get install curl)")
command -v ss >/dev/null || missing+=("ss (apt-get install iproute2)")
command -v timeout >/dev/null || missing+=("timeout (apt-get install coreutils)")
command -v awk >/dev/null || missing+=("awk (apt-get install mawk)")
if ((${#missing[@]})); then
    echo "run.sh: missing tools; this script installs nothing:" >&2
    printf '  - %s\n' "${missing[@]}" >&2
    exit 1
fi
[[ -x $BIN ]] || die "no portcullis binary at $BIN: build it with 'cargo build --release' (or set PORTCULLIS_BIN)"

# ---------------------------------------------------------------- temp dir, cleanup

TMP=$(mktemp -d "${TMPDIR:-/tmp}/portcullis-load.XXXXXX")
# nginx started as root runs its workers as `nobody`; they must reach their temp paths here.
chmod 755 "$TMP"
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
    if [[ $KEEP_TMP == 1 ]]; then
        echo "run.sh: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Use one copy of the binary for the whole run, even if it is rebuilt meanwhile.
cp "$BIN" "$TMP/portcullis"
PORTCULLIS="$TMP/portcullis"

# ---------------------------------------------------------------- free loopback ports

PICKED=" "
# free_port VAR: a port below the ephemeral range (so wrk's own client ports never collide)
# on which nothing listens. A race with another program remains possible; every server is
# checked to be alive and to answer as expected before anything is measured.
free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + RANDOM % 12000))
        [[ $PICKED == *" $p "* ]] && continue
        if [[ -z $(ss -Htln "sport = :$p") ]]; then
            PICKED+="$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free loopback port found"
}
free_port BACKEND_PORT
free_port GW_PORT
free_port GW_ADMIN_PORT
free_port NGINX_PORT

# ---------------------------------------------------------------- start the servers

# started NAME LOG: remember the last background process for cleanup.
started() { PIDS+=("$!"); eval "PID_$1=$!"; eval "LOG_$1=\$2"; }

show_log() { echo "--- last lines of $1" >&2; tail -n 20 "$1" >&2 || true; }

# wait_answers NAME URL: until the server answers HTTP at all (any status), 10 s at most.
wait_answers() {
    local name=$1 url=$2 pid log code i
    pid=$(eval echo "\$PID_$name")
    log=$(eval echo "\$LOG_$name")
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$name exited during start-up (port taken?)"
        fi
        code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        [[ $code != 000 ]] && return 0
        sleep 0.1
    done
    show_log "$log"
    die "$name did not answer $url within 10 s"
}

PORTCULLIS_LOG=warn "$PORTCULLIS" echo --listen "$HOST:$BACKEND_PORT" >"$TMP/echo.log" 2>&1 &
started backend "$TMP/echo.log"

cat >"$TMP/gateway.toml" <<EOF
# Generated by benches/load/run.sh: one public route to the echo backend.
[server]
listen = ["$HOST:$GW_PORT"]
public_url = "http://$HOST:$GW_PORT"
threads = $GW_THREADS
shutdown_grace = "0s"        # nothing is in flight when the bench stops it

[admin]
listen = "$HOST:$GW_ADMIN_PORT"

[[routes]]
name = "bench"
path = "/"
upstream = "http://$HOST:$BACKEND_PORT"
auth = "public"
EOF
if ! "$PORTCULLIS" check -c "$TMP/gateway.toml" >"$TMP/check.log" 2>&1; then
    cat "$TMP/check.log" >&2
    die "portcullis check refused the generated config"
fi
PORTCULLIS_LOG=$GW_LOG "$PORTCULLIS" -c "$TMP/gateway.toml" >"$TMP/gateway.log" 2>&1 &
started portcullis "$TMP/gateway.log"

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
# Generated by benches/load/run.sh: nginx proxy_pass to the same echo backend.
daemon off;
master_process on;
worker_processes $GW_THREADS;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;

    # nginx closes a client connection after 1000 requests by default; the gateway does
    # not, and wrk's reconnects would be charged to nginx alone.
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream echo_backend {
        server $HOST:$BACKEND_PORT;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen $HOST:$NGINX_PORT;
        client_max_body_size 0;            # --body mode: no 413 for large bodies
        # With proxy_request_buffering off nginx forwards a body in pieces of this size
        # (16k by default); pingora reads and forwards 64 KiB at a time. Streaming
        # throughput depends strongly on it, so both proxies get the same piece size.
        client_body_buffer_size $NGINX_BODY_BUFFER;

        location / {
            proxy_pass http://echo_backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # What the gateway sends too, so the backend does the same work for both.
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Forwarded-Host \$http_host;
            # Stream request bodies as the gateway does, instead of spooling them to disk.
            proxy_request_buffering off;
        }
    }
}
EOF
NGINX_ARGS=(-p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf")
nginx_help=$("$NGINX" -h 2>&1 || true)
[[ $nginx_help == *" -e filename"* ]] && NGINX_ARGS+=(-e "$TMP/nginx/error.log")   # nginx >= 1.19.5
if ! "$NGINX" "${NGINX_ARGS[@]}" -t -q >"$TMP/nginx/test.log" 2>&1; then
    cat "$TMP/nginx/test.log" >&2
    die "nginx refused the generated config"
fi
"$NGINX" "${NGINX_ARGS[@]}" >"$TMP/nginx/stderr.log" 2>&1 &
started nginx "$TMP/nginx/error.log"

wait_answers backend "http://$HOST:$BACKEND_PORT$BENCH_PATH"
wait_answers portcullis "http://$HOST:$GW_PORT$BENCH_PATH"
wait_answers nginx "http://$HOST:$NGINX_PORT$BENCH_PATH"

TARGETS=(direct nginx portcullis)
declare -A URL=(
    [direct]="http://$HOST:$BACKEND_PORT$BENCH_PATH"
    [nginx]="http://$HOST:$NGINX_PORT$BENCH_PATH"
    [portcullis]="http://$HOST:$GW_PORT$BENCH_PATH"
)

# ---------------------------------------------------------------- verify before measuring

# wrk counts only statuses >= 400 as errors: a 3xx or a 404 would be measured silently.
# So each target must answer 200 with the echo backend's JSON for the path we asked, and
# the proxies' answers must carry the X-Forwarded-For they added on the way (the request
# went through the proxy to the backend, not answered by the proxy itself).
if [[ $MODE == body ]]; then
    head -c "$BODY_BYTES" /dev/zero | tr '\0' x >"$TMP/body.bin"
fi
verify() {
    local name=$1 url=${URL[$1]} body="$TMP/verify-$1.json" code
    local curl_args=(--noproxy '*' -sS -o "$body" -w '%{http_code}' --max-time 10)
    if [[ $MODE == body ]]; then
        curl_args+=(-H 'Content-Type: application/octet-stream' -H 'Expect:' --data-binary "@$TMP/body.bin")
    fi
    code=$(curl "${curl_args[@]}" "$url") || die "$name: request to $url failed"
    [[ $code == 200 ]] || die "$name answered $code, not 200, at $url: refusing to measure it (wrk counts a 3xx or a 404 as success)"
    grep -Eq "\"uri\": *\"$BENCH_PATH\"" "$body" || die "$name: the answer is not the echo backend's for $BENCH_PATH: $(head -c 300 "$body")"
    if [[ $name == direct ]]; then
        ! grep -qi '"x-forwarded-for"' "$body" || die "direct: the backend saw X-Forwarded-For: is something in between?"
    else
        grep -qi '"x-forwarded-for"' "$body" || die "$name: no x-forwarded-for reached the backend: did the proxy answer by itself?"
    fi
    if [[ $MODE == body ]]; then
        grep -Eq "\"body_bytes\": *$BODY_BYTES([^0-9]|\$)" "$body" ||
            die "$name: the backend did not receive the $BODY_BYTES-byte body: $(grep body_bytes "$body")"
    fi
}
for t in "${TARGETS[@]}"; do verify "$t"; done

# ---------------------------------------------------------------- measure

WRK_EXTRA=()
WRK_SCRIPT_ARGS=()
if [[ $MODE == body ]]; then
    # Large bodies: give a slow answer 10 s before wrk calls it a timeout (default 2 s).
    WRK_EXTRA=(--timeout 10s -s "$HERE/post.lua")
    WRK_SCRIPT_ARGS=(-- "$BODY_BYTES")
fi

# run_wrk SECONDS DURATION URL OUT: one wrk run, killed if it overruns by 30 s. It runs in
# the background and is waited for, so that a signal reaches the trap at once (bash runs
# traps only after a foreground command ends) and the cleanup stops wrk too.
run_wrk() {
    local secs=$1 dur=$2 url=$3 out=$4
    timeout -k 5 $((secs + 30)) \
        wrk -t1 -c"$CONNS" -d"$dur" --latency "${WRK_EXTRA[@]}" "$url" "${WRK_SCRIPT_ARGS[@]}" >"$out" 2>&1 &
    WRK_PID=$!
    if ! wait "$WRK_PID"; then
        WRK_PID=
        cat "$out" >&2
        die "wrk failed against $url"
    fi
    WRK_PID=
}

# parse OUT: "req/s p50_ms p99_ms errors" from wrk's --latency output. Errors are non-2xx/3xx
# answers plus socket errors (connect, read, write, timeout).
parse() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /s$/)  return v * 1000
            if (v ~ /m$/)  return v * 60000
            if (v ~ /h$/)  return v * 3600000
            return v + 0
        }
        $1 == "Requests/sec:" { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx or 3xx responses:/ { errs += $NF }
        /Socket errors:/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
        END {
            if (rps == "" || p50 == "" || p99 == "") exit 1
            printf "%s %.3f %.3f %d\n", rps, p50, p99, errs
        }' "$1"
}

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
if [[ $MODE == body ]]; then what="POST $BENCH_PATH with a $BODY_BYTES-byte body ($BODY_LABEL)"; else what="GET $BENCH_PATH"; fi
echo "Portcullis load bench: $what"
echo "  machine:    $(nproc) CPUs${cpu:+ ($cpu)}, $(uname -sr)"
echo "  portcullis: $("$PORTCULLIS" --version 2>/dev/null | head -1) sha256 $(sha256sum "$PORTCULLIS" | cut -c1-12) ($BIN)"
echo "  nginx:      $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes $GW_THREADS, upstream keepalive 64, client_body_buffer_size $NGINX_BODY_BUFFER, proxy_request_buffering off"
echo "  gateway:    threads = $GW_THREADS, PORTCULLIS_LOG=$GW_LOG"
echo "  wrk:        $(wrk -v 2>&1 | head -1 | awk '{ print $2 }') -t1 -c$CONNS -d$DURATION --latency${WRK_EXTRA[*]:+ ${WRK_EXTRA[*]}}${WRK_SCRIPT_ARGS[*]:+ URL ${WRK_SCRIPT_ARGS[*]}}"
echo "  plan:       warm-up $WARMUP each, then $ROUNDS round(s) x 3 targets x $DURATION (about $((3 * WARM_S + ROUNDS * 3 * (DUR_S + 1) + 5)) s)"
echo

if ((WARM_S > 0)); then
    for t in "${TARGETS[@]}"; do run_wrk "$WARM_S" "$WARMUP" "${URL[$t]}" "$TMP/warmup-$t.txt"; done
fi

# cpu_ticks PID...: CPU time (user + system, in clock ticks) used so far by these processes
# and their children (nginx's workers). Read between runs, never during one.
cpu_ticks() {
    local want=" $* " sum=0 f pid line
    local -a fields
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        pid=${f#/proc/}
        pid=${pid%/stat}
        read -ra fields <<<"${line##*) }"     # from field 3 (state) on: comm may hold spaces
        if [[ $want == *" $pid "* || $want == *" ${fields[1]} "* ]]; then
            sum=$((sum + fields[11] + fields[12]))
        fi
    done
    echo "$sum"
}
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
declare -A PROXY_PID=([direct]="" [nginx]=$PID_nginx [portcullis]=$PID_portcullis)
# us_per_req TICKS REQUESTS: CPU microseconds per completed request.
us_per_req() { awk -v d="$1" -v n="$2" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.0f", d / hz * 1e6 / n; else print "-" }'; }

declare -A RPS P50 P99 ERRS CPU_PROXY CPU_BACKEND
declare -a ORDER=()
for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < 3; i++)); do
        t=${TARGETS[$(((i + r - 1) % 3))]}
        out="$TMP/wrk-r$r-$t.txt"
        proxy0=0 proxy1=0
        [[ -n ${PROXY_PID[$t]} ]] && proxy0=$(cpu_ticks "${PROXY_PID[$t]}")
        backend0=$(cpu_ticks "$PID_backend")
        run_wrk "$DUR_S" "$DURATION" "${URL[$t]}" "$out"
        [[ -n ${PROXY_PID[$t]} ]] && proxy1=$(cpu_ticks "${PROXY_PID[$t]}")
        backend1=$(cpu_ticks "$PID_backend")
        read -r RPS[$r,$t] P50[$r,$t] P99[$r,$t] ERRS[$r,$t] < <(parse "$out") ||
            { cat "$out" >&2; die "could not parse wrk's output for $t"; }
        reqs=$(awk '/ requests in / { print $1; exit }' "$out")
        CPU_BACKEND[$r,$t]=$(us_per_req $((backend1 - backend0)) "${reqs:-0}")
        CPU_PROXY[$r,$t]=-
        [[ -n ${PROXY_PID[$t]} ]] && CPU_PROXY[$r,$t]=$(us_per_req $((proxy1 - proxy0)) "${reqs:-0}")
        ORDER[r]+="$t "
        sleep 1
    done
done

# ---------------------------------------------------------------- cross-check, report

# The gateway counts every answer by status: any status but 200 means part of what wrk
# measured was not the proxied route. Status "0" is a request whose client left before the
# answer: wrk closes its connections with requests in flight when each run ends (about
# CONNS per run), so those are expected and only reported.
gw_other="?"
gw_abandoned="?"
if metrics=$(curl --noproxy '*' -s --max-time 5 "http://$HOST:$GW_ADMIN_PORT/metrics") &&
    [[ $metrics == *portcullis_requests_total* ]]; then
    read -r gw_other gw_abandoned < <(awk '
        /^portcullis_requests_total\{/ && /status="0"/ { a += $NF; next }
        /^portcullis_requests_total\{/ && !/status="200"/ { n += $NF }
        END { print n + 0, a + 0 }' <<<"$metrics")
fi

# proxy-cpu-us, echo-cpu-us: CPU microseconds per completed request used by the proxy
# (nginx: master and workers) and by the echo backend; 100 Hz ticks, a few percent coarse.
if [[ $MODE == body ]]; then
    printf '%-5s  %-10s  %10s  %9s  %8s  %8s  %6s  %12s  %11s\n' round target req/s "MiB/s up" "p50 ms" "p99 ms" errors "proxy-cpu-us" "echo-cpu-us"
else
    printf '%-5s  %-10s  %10s  %8s  %8s  %6s  %12s  %11s\n' round target req/s "p50 ms" "p99 ms" errors "proxy-cpu-us" "echo-cpu-us"
fi
total_errs=0
for ((r = 1; r <= ROUNDS; r++)); do
    for t in ${ORDER[r]}; do
        cpu_p="${CPU_PROXY[$r,$t]}"
        cpu_b="${CPU_BACKEND[$r,$t]}"
        if [[ $MODE == body ]]; then
            mib=$(awk -v q="${RPS[$r,$t]}" -v b="$BODY_BYTES" 'BEGIN { printf "%.1f", q * b / 1048576 }')
            printf '%-5s  %-10s  %10.1f  %9s  %8.2f  %8.2f  %6d  %12s  %11s\n' "$r" "$t" "${RPS[$r,$t]}" "$mib" "${P50[$r,$t]}" "${P99[$r,$t]}" "${ERRS[$r,$t]}" "$cpu_p" "$cpu_b"
        else
            printf '%-5s  %-10s  %10.1f  %8.2f  %8.2f  %6d  %12s  %11s\n' "$r" "$t" "${RPS[$r,$t]}" "${P50[$r,$t]}" "${P99[$r,$t]}" "${ERRS[$r,$t]}" "$cpu_p" "$cpu_b"
        fi
        total_errs=$((total_errs + ${ERRS[$r,$t]}))
    done
done
echo
ratios=()
for ((r = 1; r <= ROUNDS; r++)); do
    ratios+=("$(awk -v a="${RPS[$r,portcullis]}" -v b="${RPS[$r,nginx]}" 'BEGIN { printf "%.2f", a / b }')")
done
direct=()
for ((r = 1; r <= ROUNDS; r++)); do
    direct+=("$(awk -v a="${RPS[$r,portcullis]}" -v n="${RPS[$r,nginx]}" -v d="${RPS[$r,direct]}" \
        'BEGIN { printf "%.2f/%.2f", a / d, n / d }')")
done
echo "Portcullis/nginx req/s, per round:            ${ratios[*]}"
echo "Portcullis/direct, nginx/direct, per round:   ${direct[*]}"
echo "Gateway answers other than 200 (its /metrics): $gw_other; left by wrk at the end of a run: $gw_abandoned"

status=0
if ((total_errs > 0)); then
    echo "WARNING: wrk saw $total_errs errors (non-2xx/3xx or socket errors); raw output: KEEP_TMP=1" >&2
    status=1
fi
if [[ $gw_other == "?" ]]; then
    echo "NOTE: could not read portcullis_requests_total from the gateway's /metrics" >&2
elif [[ $gw_other != 0 ]]; then
    echo "WARNING: the gateway answered $gw_other requests with a status other than 200" >&2
    status=1
fi
exit "$status"

#!/usr/bin/env python3
"""Writes benches/BENCHMARKS.md from what benches/load/compare.sh measured (standard library only).

Per target: the median over the rounds of req/s, p50 and p99, and the server CPU per request
over all rounds (ticks of the listening processes / requests served). Ratios of throughput are
taken round by round (targets measured minutes apart drift apart) and their median is reported;
ratios of CPU per request use the all-rounds figures.
"""

import argparse
import os
import platform
import shlex
import statistics
import sys


def load_env(path):
    out = {}
    if path and os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if "=" in line:
                k, _, v = line.partition("=")
                out[k] = " ".join(shlex.split(v)) if v else ""
    return out


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {mem} memory, {platform.system()} {platform.release()}"


def fmt_num(v, digits=1):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--probes")
    p.add_argument("--versions")
    p.add_argument("--hz", type=float, default=100)
    p.add_argument("--load-before", default="?")
    p.add_argument("--load-after", default="?")
    p.add_argument("--started", default="?")
    p.add_argument("--elapsed", default="?")
    p.add_argument("--command", default="")
    p.add_argument("--names", default="")
    p.add_argument("--note", default="", help="a paragraph added under the run's details (NOTE=...)")
    a = p.parse_args()

    names = {}
    order = []
    for line in a.names.splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            names[k] = v
            order.append(k)

    rows = []
    with open(a.results) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    rounds = sorted({int(r["round"]) for r in rows})
    by = {}
    for r in rows:
        by[(int(r["round"]), r["target"])] = r

    def per_round(t, key):
        return [float(by[(n, t)][key]) for n in rounds if (n, t) in by]

    summary = {}
    for t in order:
        rps = per_round(t, "rps")
        if not rps:
            continue
        reqs = sum(per_round(t, "requests"))
        tick = sum(per_round(t, "ticks"))
        extra = sum(per_round(t, "extra_ticks"))
        summary[t] = {
            "rps": statistics.median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50": statistics.median(per_round(t, "p50_ms")),
            "p99": statistics.median(per_round(t, "p99_ms")),
            "cpu": tick / a.hz * 1e6 / reqs if reqs else None,
            "extra_cpu": extra / a.hz * 1e6 / reqs if reqs and extra else None,
            "errors": int(sum(per_round(t, "errors"))),
            "requests": int(reqs),
        }

    def cpu_ratio(x, y):
        if x in summary and y in summary and summary[x]["cpu"] and summary[y]["cpu"]:
            return summary[x]["cpu"] / summary[y]["cpu"], None
        return None, None

    def rps_ratio(x, y):
        vals = [float(by[(n, x)]["rps"]) / float(by[(n, y)]["rps"])
                for n in rounds if (n, x) in by and (n, y) in by and float(by[(n, y)]["rps"]) > 0]
        if not vals:
            return None, None
        return statistics.median(vals), vals

    def p99_ratio(x, y):
        vals = [float(by[(n, x)]["p99_ms"]) / float(by[(n, y)]["p99_ms"])
                for n in rounds if (n, x) in by and (n, y) in by and float(by[(n, y)]["p99_ms"]) > 0]
        if not vals:
            return None, None
        return statistics.median(vals), vals

    probes = load_env(a.probes)
    versions = load_env(a.versions)
    out = []
    w = out.append
    w("# Benchmarks")
    w("")
    w("Portcullis beside the peers doing the same jobs, measured in one run by `make bench`")
    w("(`benches/load/compare.sh`; what each target is and how it is measured:")
    w("[benches/load/README.md](load/README.md)). Every figure here comes from the command below;")
    w("absolute figures mean little across machines or runs, the ratios measured side by side do.")
    w("")
    w(f"- **Date:** {a.started}; the run took {a.elapsed} s.")
    w(f"- **Machine:** {machine()}. wrk runs on the same cores as the servers.")
    w(f"- **Load average** (1, 5, 15 min) before the run: {a.load_before}; after: {a.load_after}.")
    try:
        busy = float(a.load_before.split()[0]) >= 0.5
    except ValueError:
        busy = False
    if busy:
        w("  The machine was not idle before the run (other builds or tests): req/s and")
        w("  latencies are noisy, and CPU per request is the steadier figure.")
    w(f"- **Command:** `make bench`, which runs `benches/load/install.sh`, `cargo build --release --locked`")
    w(f"  and `{a.command}`.")
    v = versions
    vs = [v.get("v_portcullis", "portcullis ?")]
    for key, label in (("v_nginx", ""), ("v_apache", ""), ("v_o2p", ""), ("v_redis", "redis-server"),
                       ("v_wrk", "wrk"), ("v_node", "node (the look-alike provider)")):
        if v.get(key):
            vs.append(f"{label} {v[key]}".strip())
    w("- **Versions:** " + "; ".join(vs) + ".")
    if a.note.strip():
        w(f"- **Note:** {a.note.strip()}")
    w("")
    w("## Per target")
    w("")
    w("req/s, p50 and p99: the median of the rounds (req/s range in brackets); server CPU: user +")
    w("system time of the target's listening processes (and their workers) from `/proc`, over all")
    w("rounds, divided by the requests served.")
    w("")
    w("| target | req/s | p50 ms | p99 ms | server CPU µs/request |")
    w("| --- | --- | --- | --- | --- |")
    for t in order:
        s = summary.get(t)
        if not s:
            continue
        cpu = fmt_num(s["cpu"])
        if s["extra_cpu"]:
            cpu += f" (+ {fmt_num(s['extra_cpu'])} redis-server)"
        w(f"| {names[t]} | {fmt_num(s['rps'])} ({fmt_num(s['rps_min'])}–{fmt_num(s['rps_max'])}) "
          f"| {s['p50']:.2f} | {s['p99']:.2f} | {cpu} |")
    errors = sum(s["errors"] for s in summary.values())
    w("")
    w(f"Errors (wrk's non-2xx/3xx answers and socket errors) over all runs: {errors}.")
    w("")

    w("## The targets of issue 11")
    w("")
    w("Throughput and p99 ratios: per round, median over the rounds (each round's value in brackets).")
    w("")
    w("| goal | measured | |")
    w("| --- | --- | --- |")

    def line(goal, value, vals, ok, unit="×"):
        if value is None:
            w(f"| {goal} | not measured in this run | – |")
            return
        detail = f" ({', '.join(f'{x:.2f}' for x in vals)})" if vals and len(vals) > 1 else ""
        w(f"| {goal} | {value:.2f}{unit}{detail} | {'met' if ok(value) else '**not met**'} |")

    r, vals = cpu_ratio("public", "nginx")
    line("CPU per request: `public` ≤ 2.5× nginx", r, vals, lambda x: x <= 2.5)
    r, vals = cpu_ratio("bearer", "public")
    line("CPU per request: `bearer` (cached token) ≤ 1.1× `public`", r, vals, lambda x: x <= 1.1)
    r, vals = cpu_ratio("login", "public")
    line("CPU per request: `login` (session) ≤ 1.15× `public`", r, vals, lambda x: x <= 1.15)
    r, vals = rps_ratio("bearer", "apache-bearer")
    line("Throughput: `bearer` ≥ 3× Apache + mod_auth_openidc (JWT bearer)", r, vals, lambda x: x >= 3)
    r, vals = rps_ratio("login", "apache-session")
    line("Throughput: `login` ≥ 3× Apache + mod_auth_openidc (session cookie)", r, vals, lambda x: x >= 3)
    r, vals = rps_ratio("bearer", "o2p-bearer")
    line("Throughput: `bearer` ≥ 1.5× oauth2-proxy (JWT bearer)", r, vals, lambda x: x >= 1.5)
    r, vals = rps_ratio("login", "o2p-cookie")
    line("Throughput: `login` ≥ 1.5× oauth2-proxy (cookie session)", r, vals, lambda x: x >= 1.5)
    for t in ("public", "bearer", "login"):
        r, vals = p99_ratio(t, "nginx")
        line(f"p99: `{t}` ≤ 1.5× nginx", r, vals, lambda x: x <= 1.5)
    r, vals = rps_ratio("routes-10k", "public")
    line("Throughput: 10,000 routes ≥ 0.95× 10 routes", r, vals, lambda x: x >= 0.95)
    r, vals = rps_ratio("login-redis", "login")
    line("Throughput: `login` with `store = \"redis\"` ≥ 0.8× the cookie store", r, vals, lambda x: x >= 0.8)
    if "mem_rss_open_kb" in probes:
        idle = int(probes["mem_rss_idle_kb"]) / 1024
        open_ = int(probes["mem_rss_open_kb"]) / 1024
        closed = int(probes["mem_rss_closed_kb"]) / 1024
        n = int(probes["mem_conns"])
        ok = open_ <= 64
        w(f"| Memory: ≤ 64 MB RSS with 10,000 idle keep-alive connections | {open_:.0f} MB with {n:,} "
          f"({idle:.0f} MB before) | {'met' if ok and n >= 10000 else '**not met**' if n >= 10000 else 'not measured at 10,000'} |")
        growth = open_ - idle
        back = closed <= idle + max(0.1 * growth, 4)
        w(f"| Memory: given back after they close (within 10% of the growth, or 4 MB, of the RSS before) "
          f"| {closed:.0f} MB 5 s after | {'met' if back else '**not met**'} |")
    else:
        w("| Memory: ≤ 64 MB RSS with 10,000 idle keep-alive connections | not measured in this run | – |")
    if "jwks_fetches" in probes:
        f = int(probes["jwks_fetches"])
        w(f"| {int(probes['jwks_requests']):,} concurrent requests with tokens of a new `kid` → 1 JWKS fetch "
          f"| {f} fetch{'es' if f != 1 else ''} ({probes['jwks_tokens']} distinct tokens; answers {probes['jwks_statuses']}) "
          f"| {'met' if f == 1 else '**not met**'} |")
    else:
        w("| 1,000 concurrent requests with tokens of a new `kid` → 1 JWKS fetch | not measured in this run | – |")
    w("")
    extra = []
    r, _ = cpu_ratio("login-redis", "login")
    if r is not None:
        extra.append(f"CPU per request of the gateway, `login` with Redis / with cookies: {r:.2f}× "
                     f"(redis-server's own CPU not included)")
    r, _ = cpu_ratio("routes-10k", "public")
    if r is not None:
        extra.append(f"CPU per request, 10,000 routes / 10 routes: {r:.2f}×")
    for x, y, label in (("apache-bearer", "bearer", "Apache bearer / Portcullis bearer"),
                        ("apache-session", "login", "Apache session / Portcullis login"),
                        ("o2p-bearer", "bearer", "oauth2-proxy bearer / Portcullis bearer"),
                        ("o2p-cookie", "login", "oauth2-proxy cookie / Portcullis login")):
        r, _ = cpu_ratio(x, y)
        if r is not None:
            extra.append(f"CPU per request, {label}: {r:.2f}×")
    if extra:
        w("Also measured: " + "; ".join(extra) + ".")
        w("")
    if probes.get("mem_nofile"):
        w(f"The memory probe ran with an open-files limit of {probes['mem_nofile']} and the gateway held "
          f"{probes.get('mem_fds', '?')} descriptors with the connections open.")
        w("")

    w("## Every run")
    w("")
    w("| round | target | req/s | p50 ms | p99 ms | errors | requests | server CPU µs/request |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        n = float(r["requests"])
        cpu = float(r["ticks"]) / a.hz * 1e6 / n if n else 0
        w(f"| {r['round']} | {r['target']} | {float(r['rps']):,.0f} | {float(r['p50_ms']):.2f} | "
          f"{float(r['p99_ms']):.2f} | {r['errors']} | {int(n):,} | {cpu:.1f} |")
    w("")
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()

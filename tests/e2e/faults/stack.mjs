// What the fault tests share: gateways on generated configurations, steady HTTP traffic with
// every answer recorded, the provider's fault controls (/__test/outage, /delay, /calls), a
// scripted login without a browser, Redis, and the gateway's metrics and memory. The real
// components are started by ../browser/harness.mjs (provider, echo backend, gateway);
// everything listens on 127.0.0.1.
//
//   cd tests/e2e && node --test --test-concurrency=1 faults/
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  BINARY, CLIENT_SECRET, SESSION_SECRET, USERS, freePort, serverSections, spawnUntil,
  startEcho, startGatewayFromConfig, startProvider, stopChild,
} from '../browser/harness.mjs';
import { serviceToken } from '../forward-auth/stack.mjs';

export { USERS, freePort, startEcho, startProvider, stopChild };

/** The service clients of provider/README.md and their secrets. */
export const SECRETS = {
  'billing-service': 'billing-secret-0123456789abcdef',
  'shipping-service': 'shipping-secret-0123456789abcdef',
  'reporting-service': 'reporting-secret-0123456789abcdef',
  'opaque-service': 'opaque-secret-0123456789abcdef',
  'es256-service': 'es256-secret-0123456789abcdef',
};

/** The headers of a browser's page load, as the gateway tells one (SPEC §5). */
export const PAGE_LOAD = { accept: 'text/html', 'sec-fetch-mode': 'navigate' };

// ------------------------------------------------------------ waiting

/**
 * Polls `probe()` (sync or async) every `intervalMs` until it returns something truthy, and
 * returns that; fails after `timeoutMs` naming `what`. A probe that throws counts as "not yet".
 */
export async function waitFor(probe, { what, timeoutMs = 10000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what ?? 'condition'} not met after ${timeoutMs} ms${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => { setTimeout(r, intervalMs); });
  }
}

/** Waits until `text()` (a log read again each time) matches `re`; returns the match. */
export function waitForLine(text, re, { what = `a line matching ${re}`, timeoutMs = 10000 } = {}) {
  return waitFor(() => text().match(re), { what, timeoutMs, intervalMs: 50 });
}

// ------------------------------------------------------------ gateways

/**
 * The text of a gateway.toml on fresh ports:
 *   issuer    the provider's issuer: a [provider] section with client `portcullis` and its
 *             secret (so opaque tokens are introspected), plus `provider` lines; none: no
 *             [provider]
 *   session   lines of [session] after its secret; `null`: no [session]
 *   server    more lines of [server] (e.g. 'keepalive_timeout = "5s"')
 *   routes    the [[routes]] TOML
 * Returns { config, port, adminPort, origin, admin }.
 */
export async function gatewayConfig({ issuer, provider = '', session = null, server = '', routes }) {
  const [port, adminPort] = [await freePort(), await freePort()];
  const sections = serverSections(port, adminPort).replace('\n[admin]', `${server}\n\n[admin]`);
  const config = `${sections}
${issuer ? `[provider]
issuer = "${issuer}"
client_id = "portcullis"
client_secret = "${CLIENT_SECRET}"
${provider}
` : ''}
${session === null ? '' : `[session]
secrets = ["${SESSION_SECRET}"]
${session}
`}
${routes}
`;
  return {
    config,
    port,
    adminPort,
    origin: `http://127.0.0.1:${port}`,
    admin: `http://127.0.0.1:${adminPort}`,
  };
}

/** `Authorization: Bearer <t>`. */
export const bearer = (t) => ({ authorization: `Bearer ${t}` });

const ROUTE_KINDS = { api: ['/api/', 'bearer'], app: ['/app/', 'login'], pub: ['/pub/', 'public'] };

/**
 * The `[[routes]]` of these tests, each to `echo`: `api` (bearer, /api/), `app` (login,
 * /app/) and `pub` (public, /pub/), or those of them `names` lists.
 */
export function routes(echo, names = Object.keys(ROUTE_KINDS)) {
  return names.map((name) => {
    const [prefix, auth] = ROUTE_KINDS[name];
    return `\n[[routes]]\nname = "${name}"\npath = "${prefix}"\nupstream = "${echo}"\nauth = "${auth}"\n`;
  }).join('');
}

/**
 * The provider look-alike, an echo backend, and a gateway (startGateway's `options`) in front
 * of the backend with `routes(echo.url, names)`. Resolves { op, echo, gw, stop() }; `stop()`
 * stops them, the last started first (whatever of them was started, should one fail).
 */
export async function startStack({ names, ...options } = {}) {
  const started = [];
  const stop = async () => {
    while (started.length) await started.pop().stop().catch(() => {});
  };
  try {
    const op = await startProvider();
    started.push(op);
    const echo = await startEcho();
    started.push(echo);
    const gw = await startGateway({ issuer: op.issuer, routes: routes(echo.url, names), ...options });
    started.push(gw);
    return { op, echo, gw, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A gateway (gatewayConfig's options) started with harness.mjs' startGatewayFromConfig:
 * resolves once its /readyz answers 200. Returns that gateway ({ url(), origin, admin, pid,
 * log(), stop() … }).
 */
export async function startGateway(options) {
  const { config, origin, admin } = await gatewayConfig(options);
  return startGatewayFromConfig({ config, origin, admin });
}

/**
 * A gateway that is not expected to get ready (its provider is down): started on
 * gatewayConfig(`options`), it resolves once its log matches `ready` (e.g. the warning that
 * the issuer cannot be reached). Returns { url(), origin, admin, pid, log(), stop() }.
 */
export async function startGatewayUntil(options, ready) {
  const { config, origin, admin } = await gatewayConfig(options);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-faults-'));
  const file = path.join(dir, 'gateway.toml');
  fs.writeFileSync(file, config);
  const { child } = await spawnUntil(BINARY, ['-c', file], {
    ready,
    what: 'gateway',
    timeoutMs: 20000,
    env: { ...process.env, PORTCULLIS_LOG: process.env.PORTCULLIS_LOG ?? 'info', NO_COLOR: '1' },
  });
  return {
    url: (p = '/') => new URL(p, origin).href,
    origin,
    admin,
    pid: child.pid,
    log: () => child.output(),
    stop: async () => {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The value of admin `/readyz`'s status (0 when the admin listener does not answer). */
export async function readyz(gw) {
  try {
    return (await request(`${gw.admin}/readyz`, { timeoutMs: 5000 })).status;
  } catch {
    return 0;
  }
}

/**
 * The sum of the samples of metric `name` at `gw`'s admin /metrics whose labels include
 * `labels` (0 when there is none).
 */
export async function metric(gw, name, labels = {}) {
  const text = (await request(`${gw.admin}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The resident memory of process `pid` in KiB (VmRSS of /proc/<pid>/status). */
export function rssKb(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return m ? Number(m[1]) : NaN;
}

/** How many file descriptors process `pid` holds open. */
export function openFds(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

// ------------------------------------------------------------ HTTP

/**
 * One HTTP/1.1 request that never follows redirects. Without `agent` it goes on a connection
 * of its own (`Connection: close`); with a keep-alive `http.Agent` it reuses that agent's.
 * `form` sends an urlencoded body, `json` a JSON one. Resolves { status, headers, body, ms,
 * json() }; rejects on a network error or after `timeoutMs` without an answer (the error
 * carries `ms`).
 */
export function request(url, {
  method = 'GET', headers = {}, form, json, agent, timeoutMs = 10000,
} = {}) {
  const u = new URL(url);
  let body;
  const sent = { ...headers };
  if (form) {
    body = new URLSearchParams(form).toString();
    sent['content-type'] = 'application/x-www-form-urlencoded';
  } else if (json !== undefined) {
    body = JSON.stringify(json);
    sent['content-type'] = 'application/json';
  }
  if (body !== undefined) sent['content-length'] = Buffer.byteLength(body);
  if (!agent) sent.connection ??= 'close';
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, method, path: `${u.pathname}${u.search}`, headers: sent, agent: agent ?? false,
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('error', fail);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          ms: performance.now() - start,
          json: () => JSON.parse(text),
        });
      });
    });
    function fail(e) {
      e.ms = performance.now() - start;
      reject(e);
    }
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer in ${timeoutMs} ms`), { code: 'TIMEOUT' })));
    req.on('error', fail);
    req.end(body);
  });
}

/** The value(s) of header `name` in an echo backend's answer. */
export function echoed(answer, name) {
  return answer.headers.filter(([k]) => k === name).map(([, v]) => v);
}

/**
 * Steady traffic: each of `clients` ({ name, keepAlive }) sends `rate` requests a second to
 * `url` — a keep-alive client on one reused connection, the others on a fresh connection each
 * — with the headers `pick(client, n)` returns as { headers, tag } (tag: any label to sort the
 * answers by, e.g. the token's kid). Requests are paced by the clock, not by the answers: a
 * slow answer does not slow the next one down (at most `rate` in flight per client).
 *
 * Each answer is recorded as { client, tag, start, end, status, body, seen, error } (ms since
 * this call; `body` only when the status is not 200; `seen` what `read(answer)` made of a 200;
 * status 0 with `error` for a network failure or no answer within `timeoutMs`).
 * Returns { results, elapsed(), stop() }: stop() sends no more, waits for every answer and
 * resolves the results.
 */
export function startLoad({ url, clients, rate, pick, read = () => undefined, timeoutMs = 10000 }) {
  const t0 = performance.now();
  const results = [];
  let stopped = false;
  const pending = new Set();
  const agents = [];
  const loops = clients.map(async (client, ci) => {
    const agent = client.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
    if (agent) agents.push(agent);
    const every = 1000 / rate;
    // Staggered starts, so the clients' requests do not all leave at the same instant.
    let next = performance.now() + (every * ci) / clients.length;
    for (let n = 0; !stopped; n += 1) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => { setTimeout(r, wait); });
      if (stopped) break;
      next += every;
      const { headers = {}, tag } = pick(client, n);
      const start = performance.now() - t0;
      const p = request(url, { headers, agent, timeoutMs }).then(
        (r) => results.push({
          client: client.name,
          tag,
          start,
          end: performance.now() - t0,
          status: r.status,
          body: r.status === 200 ? undefined : r.body,
          seen: r.status === 200 ? read(r) : undefined,
        }),
        (e) => results.push({ client: client.name, tag, start, end: performance.now() - t0, status: 0, error: e.code ?? e.message }),
      );
      pending.add(p);
      p.finally(() => pending.delete(p));
    }
  });
  return {
    results,
    elapsed: () => performance.now() - t0,
    async stop() {
      stopped = true;
      await Promise.all(loops);
      await Promise.all([...pending]);
      for (const a of agents) a.destroy();
      return results;
    },
  };
}

/**
 * Counts of `results` (startLoad's) that started in [from, to) ms and match `filter`:
 * { sent, ok, failed, statuses: {status: n}, errors: {error: n} } where ok is status `okStatus`.
 */
export function tally(results, { from = 0, to = Infinity, filter = () => true, okStatus = 200 } = {}) {
  const chosen = results.filter((r) => r.start >= from && r.start < to && filter(r));
  const statuses = {};
  const errors = {};
  for (const r of chosen) {
    statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
  }
  const ok = chosen.filter((r) => r.status === okStatus).length;
  return { sent: chosen.length, ok, failed: chosen.length - ok, statuses, errors };
}

/** Runs `n` requests at once (request()'s options from `make(i)`); resolves them in order. */
export function burst(n, url, make = () => ({})) {
  return Promise.all(Array.from({ length: n }, (_, i) => request(url, make(i)).catch((e) => ({ status: 0, error: e.code ?? e.message, ms: e.ms }))));
}

// ------------------------------------------------------------ the provider

/** A client-credentials token of `client` (a key of SECRETS) for `scope`. */
export function token(op, client, scope = 'orders:read') {
  return serviceToken(op, client, SECRETS[client], scope);
}

/** The `kid` a JWT's header names. */
export function kidOf(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString('utf8')).kid;
}

/** POSTs `body` to the provider's test endpoint /__test/`what`; resolves its JSON answer. */
export async function opControl(op, what, body = {}) {
  const r = await request(`${op.origin}/__test/${what}`, { method: 'POST', json: body });
  if (r.status !== 200) throw new Error(`/__test/${what}: ${r.status} ${r.body}`);
  return r.json();
}

/** How many requests the provider received on `name` (a key of GET /__test/calls). */
export async function opCalls(op, name) {
  const r = await request(`${op.origin}/__test/calls`);
  return r.json().calls[name] ?? 0;
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
export function accepting(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

// ------------------------------------------------------------ a login without a browser

/**
 * One browser's cookies. Every loopback port shares a browser's cookie jar for 127.0.0.1, and
 * the provider's cookies (op_*) and the gateway's (_portcullis*) have different names: so
 * every cookie goes everywhere (paths ignored), as good as a browser here.
 */
export class Jar {
  cookies = new Map();

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  /** request() with this jar's cookies, keeping the ones the answer sets. */
  async send(url, options = {}) {
    const headers = { ...options.headers };
    if (this.cookies.size) headers.cookie = this.header();
    const r = await request(url, { ...options, headers });
    for (const c of r.headers['set-cookie'] ?? []) {
      const [pair, ...attrs] = c.split(';');
      const eq = pair.indexOf('=');
      const [name, value] = [pair.slice(0, eq).trim(), pair.slice(eq + 1)];
      const gone = value === '' || attrs.some((a) => /^\s*(max-age=0|expires=thu, 01 jan 1970)/i.test(a));
      if (gone) this.cookies.delete(name); else this.cookies.set(name, value);
    }
    return r;
  }
}

/**
 * A login up to the callback, not included: a page load of `gw`'s `target` (302 to the
 * provider), the provider's login form filled in as `user`, and its redirects followed until
 * one leads back to the gateway. Resolves { jar, callback } (the callback URL, with its code).
 */
export async function loginUntilCallback(gw, user, target = '/app/') {
  const jar = new Jar();
  const start = await jar.send(gw.url(target), { headers: PAGE_LOAD });
  if (start.status !== 302) throw new Error(`a page load of ${target}: ${start.status}, not a redirect to the provider: ${start.body}`);
  let url = new URL(start.headers.location, gw.url(target)).href;
  let r = await jar.send(url, { headers: PAGE_LOAD });
  for (let step = 0; step < 12; step += 1) {
    if (r.status === 302 || r.status === 303) {
      const next = new URL(r.headers.location, url);
      if (next.origin === gw.origin) return { jar, callback: next.href };
      url = next.href;
      r = await jar.send(url, { headers: PAGE_LOAD });
    } else if (r.status === 200 && r.body.includes('name="username"')) {
      r = await jar.send(url, { method: 'POST', headers: PAGE_LOAD, form: { username: user.username, password: user.password } });
    } else {
      throw new Error(`login at the provider: ${r.status} at ${url}: ${r.body.slice(0, 500)}`);
    }
  }
  throw new Error(`login at the provider: too many steps, last at ${url}`);
}

/**
 * A whole login of `user` at `gw`: resolves the jar holding the session once the callback
 * sent the browser back to `target`.
 */
export async function login(gw, user, target = '/app/') {
  const { jar, callback } = await loginUntilCallback(gw, user, target);
  const r = await jar.send(callback, { headers: PAGE_LOAD });
  if (r.status !== 302 || r.headers.location !== target) {
    throw new Error(`callback: ${r.status} to ${r.headers.location}, not back to ${target}: ${r.body.slice(0, 500)}`);
  }
  return jar;
}

// ------------------------------------------------------------ Redis

/**
 * Debian's redis-server on 127.0.0.1:`port` with its files in `dir`, every write appended to
 * its log file before it is answered (appendfsync always), so a restart on the same `dir`
 * brings back every session. Resolves once it is ready: { port, pid, kill(), stop() }; kill()
 * is SIGKILL (a crash), stop() a SIGTERM.
 */
export async function startRedis({ port, dir }) {
  const { child } = await spawnUntil('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--protected-mode', 'yes',
  ], { ready: /Ready to accept connections/, what: `redis-server :${port}`, keep: 20000 });
  return {
    port,
    pid: child.pid,
    output: () => child.output(),
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    },
    stop: () => stopChild(child),
  };
}

// Real-browser end-to-end harness: the real test provider (provider/server.js), an echo
// backend and the gateway (target/release/portcullis), driven by Debian's chromium through
// playwright-core. Everything listens on 127.0.0.1; the browser is kept off every other
// address (only loopback resolves, and anything else goes to a recording trap proxy).
//
//   cargo build --release --locked && cd tests/e2e && node --test browser/
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium } from 'playwright-core';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '../../..');
export const BINARY = process.env.PORTCULLIS_BIN ?? path.join(ROOT, 'target/release/portcullis');
const PROVIDER = path.resolve(HERE, '../provider/server.js');

/** Fails early, with the command that fixes it, when the gateway binary is missing. */
function checkBinary() {
  if (!fs.existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`cargo build --release --locked\` first`);
  }
  // A binary older than the sources is probably not what the tests should run: say so.
  const built = fs.statSync(BINARY).mtimeMs;
  const newer = fs.readdirSync(path.join(ROOT, 'src'), { recursive: true })
    .filter((f) => f.endsWith('.rs'))
    .filter((f) => fs.statSync(path.join(ROOT, 'src', f)).mtimeMs > built);
  if (newer.length && !checkBinary.warned) {
    checkBinary.warned = true;
    console.error(`warning: ${BINARY} is older than src/ (${newer.slice(0, 3).join(', ')}…): `
      + 'run `cargo build --release --locked` for a fresh one');
  }
}

export const CLIENT_SECRET = 'portcullis-secret-0123456789abcdef';
export const SESSION_SECRET = 'browser-e2e-session-secret-0123456789abcdef';
export const USERS = {
  alice: { username: 'alice', password: 'alice-password' },
  bob: { username: 'bob', password: 'bob-password' },
};

// ------------------------------------------------------------ processes

const children = new Set();
// Last resort: whatever way this test process ends, no server outlives it.
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function track(child) {
  children.add(child);
  // A failed spawn shows up as an early exit in waitForOutput/startGateway, not a crash.
  child.on('error', (e) => { child.spawnError = e; });
  child.once('exit', () => children.delete(child));
  return child;
}

/** Stops `child`: SIGTERM, SIGKILL after `graceMs`; resolves once it is gone. */
export function stopChild(child, graceMs = 2000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
    child.kill('SIGTERM');
  });
}

const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** A free loopback port (bound, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Waits until `out()` holds a line matching `re`; fails early if the child exits. */
function waitForOutput(child, out, re, what, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = stripAnsi(out()).match(re);
      if (m) { cleanup(); resolve(m); }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready:\n${stripAnsi(out())}`));
    };
    const onError = (e) => onExit(e.message);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} not ready after ${timeoutMs} ms:\n${stripAnsi(out())}`));
    }, timeoutMs);
    const poll = setInterval(check, 50);
    function cleanup() {
      clearTimeout(timer); clearInterval(poll); child.off('exit', onExit); child.off('error', onError);
    }
    child.once('exit', onExit);
    child.once('error', onError);
    check();
  });
}

/**
 * Spawns `cmd` (stdin closed) and keeps what it writes: `child.output()` is its stdout and
 * stderr so far (the last `keep` characters). The child is killed when this process exits;
 * a failed spawn shows as an exit (`child.spawnError`), not a crash.
 */
export function spawnKept(cmd, args, { keep = Infinity, ...opts } = {}) {
  const child = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }));
  let out = '';
  const add = (d) => { out += d; if (out.length > keep) out = out.slice(-keep); };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  child.on('error', (e) => add(`spawn failed: ${e.message}\n`));
  child.output = () => out;
  return child;
}

/**
 * Spawns `cmd` with spawnKept and waits until its output holds a line matching `ready`
 * (ANSI colours ignored); fails early, with the output, if it exits. Returns
 * { child, match }.
 */
export async function spawnUntil(cmd, args, { ready, what = cmd, timeoutMs = 15000, ...opts }) {
  const child = spawnKept(cmd, args, opts);
  const match = await waitForOutput(child, child.output, ready, what, timeoutMs);
  return { child, match };
}

/**
 * The real provider. `args` e.g. ['--access-ttl', '6', '--rotate-refresh-tokens'].
 * Returns { issuer, origin, port, stderr(), stop() }.
 */
export async function startProvider(args = []) {
  const child = track(spawn(process.execPath, [PROVIDER, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const m = await waitForOutput(child, () => stdout + stderr, /^READY (\{.*\})$/m, 'provider');
  const ready = JSON.parse(m[1]);
  return {
    issuer: ready.issuer,
    port: ready.port,
    origin: new URL(ready.issuer).origin,
    stderr: () => stderr,
    stop: () => stopChild(child),
  };
}

/** `portcullis echo` on a fresh port. Returns { url, stop() }. */
export async function startEcho() {
  checkBinary();
  const { child, match } = await spawnUntil(BINARY, ['echo', '--listen', '127.0.0.1:0'], {
    env: { ...process.env, PORTCULLIS_LOG: 'info' },
    ready: /listening.*?(127\.0\.0\.1:\d+)/,
    what: 'echo backend',
  });
  return { url: `http://${match[1]}`, stop: () => stopChild(child) };
}

/**
 * The gateway with `[server]` and `[admin]` generated and `[provider]`, `[session]` and
 * routes filled in from the options; waits until admin /readyz answers 200.
 *
 *   issuer, echo     the provider's issuer, the echo backend's URL
 *   provider         extra lines inside [provider] (e.g. 'login_flow = "implicit"')
 *   session          extra lines inside [session] (e.g. 'refresh = true')
 *   extra            more sections before the routes (e.g. '[headers]\naccess_token = "…"')
 *   routes           TOML of [[routes]] ({echo} is replaced by the echo backend's URL);
 *                    default: the ROUTES below
 *
 * Returns { url, origin, admin, dir, file, config, log(), stop() } (startGatewayFromConfig's).
 */
export const ROUTES = `
[[routes]]
name = "app"
path = "/app/"
upstream = "{echo}"
auth = "login"
allow = { roles = ["minio-user"] }

[[routes]]
name = "pub"
path = "/pub/"
upstream = "{echo}"
auth = "public"
`;

/**
 * The [server] and [admin] sections of a test gateway on 127.0.0.1:`port` (its public_url)
 * and 127.0.0.1:`adminPort`, ending in a blank line.
 */
export function serverSections(port, adminPort) {
  return `[server]
listen = ["127.0.0.1:${port}"]
public_url = "http://127.0.0.1:${port}"
threads = 2
shutdown_grace = "1s"

[admin]
listen = "127.0.0.1:${adminPort}"
`;
}

export async function startGateway({
  issuer, echo, provider = '', session = '', extra = '', routes = ROUTES,
}) {
  checkBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-browser-'));
  const [port, adminPort] = [await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${port}`;
  const config = `${serverSections(port, adminPort)}
[provider]
issuer = "${issuer}"
client_id = "portcullis"
client_secret = "${CLIENT_SECRET}"
${provider}

[session]
secrets = ["${SESSION_SECRET}"]
${session}

${extra}
${routes.replaceAll('{echo}', echo)}
`;
  return startGatewayFromConfig({ config, dir, admin: `http://127.0.0.1:${adminPort}`, origin });
}

/**
 * The gateway run on the whole configuration `config` (written as `dir`/gateway.toml, its
 * log beside it; `dir` defaults to a fresh temporary folder); waits until `admin`/readyz
 * answers 200, and fails with the log (and the config) if the gateway exits first.
 *
 *   admin       the admin listener's URL, e.g. http://127.0.0.1:9901
 *   origin      where the gateway is reached, for url() (default: its public_url)
 *   env         more environment (PORTCULLIS_LOG defaults to $PORTCULLIS_LOG or info)
 *   keepDir     stop() leaves `dir` in place (default: stop() removes it)
 *   timeoutMs   how long it may take to get ready (default 20 s)
 *
 * Returns { url(), origin, admin, dir, file, config, pid, log(), stop() }.
 */
export async function startGatewayFromConfig({
  config, dir, admin, origin, env = {}, keepDir = false, timeoutMs = 20000,
}) {
  checkBinary();
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-gw-'));
  origin ??= config.match(/^public_url\s*=\s*"([^"]*)"/m)?.[1].replace(/\/$/, '');
  const file = path.join(dir, 'gateway.toml');
  fs.writeFileSync(file, config);
  const logFile = path.join(dir, 'gateway.log');
  const logFd = fs.openSync(logFile, 'w');
  const child = track(spawn(BINARY, ['-c', file], {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, PORTCULLIS_LOG: process.env.PORTCULLIS_LOG ?? 'info', NO_COLOR: '1', ...env },
  }));
  fs.closeSync(logFd);
  const log = () => stripAnsi(fs.readFileSync(logFile, 'utf8'));
  const stop = async () => {
    await stopChild(child);
    if (!keepDir) fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.spawnError) {
      throw new Error(`gateway exited ${child.exitCode ?? child.spawnError}:\n${log()}\n--- config ---\n${config}`);
    }
    try {
      const r = await fetch(`${admin}/readyz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`gateway never ready:\n${log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: (p = '/') => new URL(p, origin).href,
    origin,
    admin,
    dir,
    file,
    config,
    pid: child.pid,
    log,
    stop,
  };
}

/**
 * Provider + echo + gateway. Returns { op, echo, gw, stop() } (stop is safe to call twice
 * and stops whatever did start when a later start failed).
 */
export async function startStack({
  providerArgs = [], provider = '', session = '', extra = '', routes,
} = {}) {
  const started = [];
  const stopAll = async () => {
    while (started.length) await started.pop().stop().catch(() => {});
  };
  try {
    const op = await startProvider(providerArgs);
    started.push(op);
    const echo = await startEcho();
    started.push(echo);
    const gw = await startGateway({
      issuer: op.issuer, echo: echo.url, provider, session, extra, routes,
    });
    started.push(gw);
    return { op, echo, gw, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

// ------------------------------------------------------------ browser

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

// Debian's chromium still calls home with the flags below (update.googleapis.com,
// accounts.google.com): trapped like the rest, but not blamed on the page under test.
const BACKGROUND = /^(CONNECT |[A-Z]+ https?:\/\/)([a-z0-9-]+\.)*(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)[:/ ]/;

/**
 * Chromium with every non-loopback request sent to a trap: a loopback "proxy" that records
 * what it was asked for and answers 403 (Chromium never proxies loopback, so the gateway and
 * the provider are reached directly). No host name but loopback resolves either. An open
 * redirect thus fails here and is recorded, instead of reaching the network.
 * `browser.trapped` lists the trapped request lines ("GET http://evil.example/ HTTP/1.1").
 */
export async function launchBrowser() {
  const trapped = [];
  const trap = net.createServer((socket) => {
    let head = '';
    socket.on('data', (d) => {
      head += d;
      const line = head.split('\r\n')[0];
      if (head.includes('\r\n')) {
        trapped.push(line);
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      }
    });
    socket.on('error', () => {});
  });
  await new Promise((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic',
      `--proxy-server=http://127.0.0.1:${trap.address().port}`,
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost',
    ],
  });
  browser.trapped = trapped;
  browser.once('disconnected', () => trap.close());
  return browser;
}

/**
 * A fresh context (own cookie jar) that aborts every request off loopback and records what
 * the browser did. Returns { context, log } where log has
 *   requests:  [{ url, method, navigation, postData }]
 *   responses: [{ url, status, location (absolute, or null), rawLocation }]
 *   offLoopback: [url]   requests off loopback (aborted, or caught by the browser's trap)
 *   dialogs:   [message]
 */
export async function newContext(browser) {
  const trappedBefore = browser.trapped?.length ?? 0;
  const context = await browser.newContext();
  context.setDefaultTimeout(15000);
  context.setDefaultNavigationTimeout(15000);
  const aborted = [];
  const log = {
    requests: [],
    responses: [],
    dialogs: [],
    get offLoopback() {
      const trapped = (browser.trapped ?? []).slice(trappedBefore).filter((l) => !BACKGROUND.test(l));
      return [...aborted, ...trapped];
    },
  };
  await context.route((url) => !(['http:', 'https:'].includes(url.protocol) && LOOPBACK.has(url.hostname)),
    (route) => {
      aborted.push(route.request().url());
      return route.abort('blockedbyclient');
    });
  context.on('request', (r) => {
    log.requests.push({
      url: r.url(), method: r.method(), navigation: r.isNavigationRequest(), postData: r.postData(),
    });
  });
  context.on('response', (r) => {
    const location = r.headers().location;
    let abs = null;
    if (location !== undefined) {
      try { abs = new URL(location, r.url()).href; } catch { abs = `unparseable:${location}`; }
    }
    log.responses.push({ url: r.url(), status: r.status(), location: abs, rawLocation: location ?? null });
  });
  context.on('page', (p) => p.on('dialog', (d) => { log.dialogs.push(d.message()); d.dismiss().catch(() => {}); }));
  return { context, log };
}

/**
 * Records the main frame's document responses of `page`; `last()` is the latest
 * non-redirect one (the page now shown).
 */
export function documents(page) {
  const seen = [];
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) seen.push(r);
  });
  return {
    all: seen,
    last: () => [...seen].reverse().find((r) => r.status() < 300 || r.status() >= 400),
  };
}

export const isLoginForm = (url) => new URL(url).pathname.includes('/login-actions/');

/** Waits for the provider's login form in `page`. */
export async function waitForLoginForm(page) {
  await page.waitForURL((u) => isLoginForm(u.href), { waitUntil: 'load' });
  await page.locator('#username').waitFor();
}

/**
 * Fills and submits the provider's login form shown in `page`, then waits until the browser
 * is back on `origin` (the gateway's), whatever the path.
 */
export async function submitLogin(page, user, origin) {
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await Promise.all([
    page.waitForURL((u) => u.origin === origin, { waitUntil: 'load' }),
    page.click('#login'),
  ]);
}

/** The value(s) of header `name` in an echo answer. */
export function echoed(echo, name) {
  return echo.headers.filter(([k]) => k === name).map(([, v]) => v);
}

/** The claims of a JWT (not verified: for looking at what the gateway passed on). */
export function jwtClaims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/** Requests in `log` sent to the provider's origin. */
export function toProvider(log, op, since = 0) {
  return log.requests.slice(since).filter((r) => r.url.startsWith(`${op.origin}/`));
}

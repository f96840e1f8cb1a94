// The forward-auth stack of one recipe: the real provider and `portcullis echo` (from
// ../browser/harness.mjs), the gateway run on deploy/forward-auth/gateway.toml, and the
// real front proxy run on its recipe file from deploy/forward-auth/<proxy>/ — the very files
// an operator copies, with only the loopback ports, the issuer and the secrets swapped for
// the ones of this run. Everything listens on 127.0.0.1.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  CLIENT_SECRET, SESSION_SECRET, freePort, spawnKept, startEcho, startGatewayFromConfig,
  startProvider, stopChild,
} from '../browser/harness.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '../../..');
// PORTCULLIS_FA_RECIPES: another copy of deploy/forward-auth (e.g. your edited recipe).
export const RECIPES = process.env.PORTCULLIS_FA_RECIPES ?? path.join(ROOT, 'deploy/forward-auth');
const VENV_BIN = path.join(HERE, '.venv/bin');

// The addresses the recipes are written for (see deploy/forward-auth/README.md).
const PROXY_ADDR = '127.0.0.1:8080';
const GATEWAY_ADDR = '127.0.0.1:4180';
const BACKEND_ADDR = '127.0.0.1:9000';
const ADMIN_ADDR = '127.0.0.1:9901';
const ISSUER = 'https://keycloak.example.com/realms/internal';

const START_TIMEOUT_MS = 20000;

// ------------------------------------------------------------ processes

/** Spawns `cmd` (harness.mjs' spawnKept), keeping the tail of its output for error messages. */
const run = (cmd, args, opts = {}) => spawnKept(cmd, args, { keep: 20000, ...opts });
const stop = (child) => stopChild(child, 3000);

/**
 * Polls `ready()` every 100 ms until it is true; fails at once, with the child's output,
 * when the child exits, and after `timeoutMs` otherwise.
 */
async function waitReady(child, what, ready, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null || child.spawnError) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode ?? child.spawnError}) `
        + `before it was ready:\n${child.output()}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`${what} not ready after ${timeoutMs} ms:\n${child.output()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ------------------------------------------------------------ HTTP without surprises

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  });
}

/**
 * One HTTP/1.1 request with exactly the headers given (fetch adds Sec-Fetch-Mode and
 * normalizes paths; this sends the path as it is). Never follows redirects.
 * Returns { status, headers, body, json() }.
 */
export function request(url, { method = 'GET', headers = {}, path: rawPath } = {}) {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname,
      port: u.port,
      method,
      path: rawPath ?? `${u.pathname}${u.search}`,
      headers: { connection: 'close', ...headers },
      agent: false,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body,
        json: () => JSON.parse(body),
      }));
    });
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

// ------------------------------------------------------------ the pieces

/** The recipe's text with this run's addresses. */
function localize(text, ports) {
  return text
    .replaceAll(PROXY_ADDR, `127.0.0.1:${ports.proxy}`)
    .replaceAll(GATEWAY_ADDR, `127.0.0.1:${ports.gateway}`)
    .replaceAll(BACKEND_ADDR, `127.0.0.1:${ports.backend}`)
    .replaceAll(ADMIN_ADDR, `127.0.0.1:${ports.admin}`)
    .replaceAll(ISSUER, ports.issuer)
    // Envoy spells a socket address as `address: 127.0.0.1, port_value: N`.
    .replaceAll(`port_value: ${PROXY_ADDR.split(':')[1]} `, `port_value: ${ports.proxy} `)
    .replaceAll(`port_value: ${GATEWAY_ADDR.split(':')[1]} `, `port_value: ${ports.gateway} `)
    .replaceAll(`port_value: ${BACKEND_ADDR.split(':')[1]} `, `port_value: ${ports.backend} `);
}

/** Copies the files of `recipe` (a folder of deploy/forward-auth) into `dir`, localized. */
function renderRecipe(recipe, dir, ports) {
  const src = path.join(RECIPES, recipe);
  for (const f of fs.readdirSync(src)) {
    fs.writeFileSync(path.join(dir, f), localize(fs.readFileSync(path.join(src, f), 'utf8'), ports));
  }
}

function startGateway(dir, ports) {
  return startGatewayFromConfig({
    config: localize(fs.readFileSync(path.join(RECIPES, 'gateway.toml'), 'utf8'), ports),
    dir,
    keepDir: true,
    admin: `http://127.0.0.1:${ports.admin}`,
    origin: `http://127.0.0.1:${ports.gateway}`,
    env: { PORTCULLIS_CLIENT_SECRET: CLIENT_SECRET, PORTCULLIS_SESSION_SECRET: SESSION_SECRET },
    timeoutMs: START_TIMEOUT_MS,
  });
}

/** How to run each front proxy on its rendered recipe in `dir`. */
export const PROXIES = {
  nginx: {
    binary: '/usr/sbin/nginx',
    start(dir) {
      // Started as root, nginx's workers run as nobody: they must reach the temp paths.
      fs.chmodSync(dir, 0o755);
      fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
      fs.chmodSync(path.join(dir, 'tmp'), 0o777);
      return run(this.binary, ['-p', `${dir}/`, '-c', 'nginx.conf', '-e', 'stderr', '-g', 'daemon off;']);
    },
  },
  caddy: {
    binary: path.join(VENV_BIN, 'caddy'),
    start(dir) {
      // Caddy keeps its data (certificates, autosave) under XDG_*: in the run's folder.
      return run(this.binary, ['run', '--config', path.join(dir, 'Caddyfile'), '--adapter', 'caddyfile'], {
        env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
        cwd: dir,
      });
    },
  },
  traefik: {
    binary: path.join(VENV_BIN, 'traefik'),
    start(dir) {
      return run(this.binary, [`--configFile=${path.join(dir, 'traefik.yml')}`], { cwd: dir, env: { ...process.env, HOME: dir } });
    },
  },
  envoy: {
    binary: path.join(VENV_BIN, 'envoy'),
    start(dir) {
      return run(this.binary, ['-c', path.join(dir, 'envoy.yaml'), '--log-level', 'warn',
        '--disable-hot-restart', '--concurrency', '1'], { cwd: dir });
    },
  },
};

/**
 * Provider (started with `providerArgs`, e.g. ['--access-ttl', '6']), echo backend, gateway
 * and the front proxy `name`. Returns
 * { op, echo, proxy: { origin, url(p), output() }, gateway: { output(), stop() }, stop() };
 * stop() stops whatever did start, and is safe to call twice.
 */
export async function startForwardAuthStack(name, { providerArgs = [] } = {}) {
  const spec = PROXIES[name];
  if (!fs.existsSync(spec.binary)) {
    throw new Error(`${spec.binary} is missing: run tests/e2e/forward-auth/install.sh`);
  }
  const stops = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `portcullis-fa-${name}-`));
  const stopAll = async () => {
    while (stops.length) await stops.pop()().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const op = await startProvider(providerArgs);
    stops.push(() => op.stop());
    const echo = await startEcho();
    stops.push(() => echo.stop());
    const ports = {
      gateway: await freePort(),
      admin: await freePort(),
      backend: Number(new URL(echo.url).port),
      issuer: op.issuer,
    };
    // The proxy first, on a port picked just before: a port taken in between (another test
    // run) is a bind error, and another port is tried. The gateway needs it as public_url.
    let child;
    for (let attempt = 1; ; attempt += 1) {
      ports.proxy = await freePort();
      renderRecipe(name, dir, ports);
      child = spec.start(dir);
      stops.push(() => stop(child));
      try {
        await waitReady(child, name, () => listening(ports.proxy));
        break;
      } catch (e) {
        if (attempt < 3 && /address already in use|EADDRINUSE/i.test(e.message)) continue;
        throw e;
      }
    }
    const gw = await startGateway(dir, ports);
    stops.push(() => gw.stop());
    const origin = `http://127.0.0.1:${ports.proxy}`;
    // Ready when a public page comes back from the backend through proxy and gateway.
    await waitReady(child, name, async () => {
      const r = await request(`${origin}/public/ready`);
      return r.status === 200 && r.headers['content-type']?.includes('json') && r.json().uri === '/public/ready';
    });
    return {
      op,
      echo,
      proxy: { origin, url: (p = '/') => new URL(p, origin).href, output: () => child.output() },
      gateway: { output: () => gw.log().slice(-20000), stop: () => gw.stop() },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** A client-credentials token from the provider (HTTP Basic). */
export async function serviceToken(op, clientId, secret, scope) {
  const r = await fetch(`${op.issuer}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  const body = await r.json();
  if (!r.ok || !body.access_token) throw new Error(`token endpoint: ${r.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

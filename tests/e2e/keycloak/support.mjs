// Helpers of the real-Keycloak suite beside ../browser/harness.mjs: the gateway's metrics,
// its command line (check, explain), and a gateway started from a whole configuration (for
// what startGateway cannot write, such as another client_id).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BINARY, freePort } from '../browser/harness.mjs';

/** The admin listener's /metrics text of gateway `gw`. */
export async function metricsOf(gw) {
  const r = await fetch(`${gw.admin}/metrics`);
  return r.text();
}

/** The sum of the samples of metric `name` whose labels include `labels`. */
export function metric(text, name, labels = {}) {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Runs the gateway binary with `args`; resolves to { code, stdout, stderr } (bounded). */
export function portcullis(args, { timeoutMs = 30000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', PORTCULLIS_LOG: 'warn', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`portcullis ${args.join(' ')}: no answer after ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Writes `text` as a gateway.toml in a fresh temporary directory; returns its path. */
export function configFile(text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-kc-'));
  const file = path.join(dir, 'gateway.toml');
  fs.writeFileSync(file, text);
  return file;
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
});

/**
 * The gateway with the configuration `body(origin)` returns (everything but [server] and
 * [admin], which are generated); waits for admin /readyz. Returns the same shape as
 * harness.mjs' startGateway: { url(), origin, admin, config, log(), stop() }.
 */
export async function startGatewayWith(body, { port } = {}) {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`cargo build --release --locked\``);
  const [p, adminPort] = [port ?? await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${p}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const config = `[server]
listen = ["127.0.0.1:${p}"]
public_url = "${origin}"
threads = 2
shutdown_grace = "1s"

[admin]
listen = "127.0.0.1:${adminPort}"

${body(origin)}
`;
  const file = configFile(config);
  const logFile = path.join(path.dirname(file), 'gateway.log');
  const fd = fs.openSync(logFile, 'w');
  const child = spawn(BINARY, ['-c', file], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, PORTCULLIS_LOG: process.env.PORTCULLIS_LOG ?? 'info', NO_COLOR: '1' },
  });
  fs.closeSync(fd);
  children.add(child);
  child.once('exit', () => children.delete(child));
  const log = () => fs.readFileSync(logFile, 'utf8');
  const stop = () => new Promise((resolve) => {
    const done = () => { fs.rmSync(path.dirname(file), { recursive: true, force: true }); resolve(); };
    if (child.exitCode !== null || child.signalCode !== null) { done(); return; }
    const t = setTimeout(() => child.kill('SIGKILL'), 2000);
    child.once('exit', () => { clearTimeout(t); done(); });
    child.kill('SIGTERM');
  });
  const deadline = Date.now() + 20000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}:\n${log()}\n--- config ---\n${config}`);
    try {
      if ((await fetch(`${admin}/readyz`)).status === 200) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) { await stop(); throw new Error(`gateway never ready:\n${log()}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: (q = '/') => new URL(q, origin).href, origin, admin, config, file, log, stop };
}

/** The tail of a gateway's log, for assertion messages. */
export const tail = (gw, n = 25) => `\n--- gateway log (tail) ---\n${gw.log().split('\n').slice(-n).join('\n')}`;

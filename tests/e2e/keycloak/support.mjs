// Helpers of the real-Keycloak suite beside ../browser/harness.mjs: the gateway's metrics,
// its command line (check, explain), and a gateway started from a whole configuration (for
// what startGateway cannot write, such as another client_id; harness.mjs runs it).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  BINARY, freePort, serverSections, startGatewayFromConfig,
} from '../browser/harness.mjs';

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

const tempDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-kc-'));

/** Writes `text` as a gateway.toml in a fresh temporary directory; returns its path. */
export function configFile(text) {
  const dir = tempDir();
  const file = path.join(dir, 'gateway.toml');
  fs.writeFileSync(file, text);
  return file;
}

/**
 * The gateway with the configuration `body(origin)` returns (everything but [server] and
 * [admin], which are generated); waits for admin /readyz. Returns harness.mjs'
 * startGatewayFromConfig's { url(), origin, admin, dir, file, config, log(), stop() }.
 */
export async function startGatewayWith(body, { port } = {}) {
  const [p, adminPort] = [port ?? await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${p}`;
  const config = `${serverSections(p, adminPort)}
${body(origin)}
`;
  return startGatewayFromConfig({
    config, dir: tempDir(), admin: `http://127.0.0.1:${adminPort}`, origin,
  });
}

/** The tail of a gateway's log, for assertion messages. */
export const tail = (gw, n = 25) => `\n--- gateway log (tail) ---\n${gw.log().split('\n').slice(-n).join('\n')}`;

// The recipe files exactly as committed (not the per-run copies the other tests make) are
// accepted by the gateway and by each proxy's own checker.
//
//   cd tests/e2e && node --test forward-auth/config.test.mjs
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { BINARY, CLIENT_SECRET, SESSION_SECRET } from '../browser/harness.mjs';
import { PROXIES, RECIPES } from './stack.mjs';

/** Runs a checker; fails with its output when it exits non-zero. */
function check(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000, ...opts });
  } catch (e) {
    assert.fail(`${cmd} ${args.join(' ')} exited ${e.status}:\n${e.stdout}${e.stderr}`);
  }
}

test('portcullis check accepts the shared gateway.toml and lists its routes', () => {
  const out = check(BINARY, ['check', '-c', path.join(RECIPES, 'gateway.toml')], {
    env: { ...process.env, PORTCULLIS_CLIENT_SECRET: CLIENT_SECRET, PORTCULLIS_SESSION_SECRET: SESSION_SECRET },
  });
  for (const route of ['"app"', '"orders-api"', '"public"']) assert.ok(out.includes(route), out);
});

test('nginx -t accepts the nginx recipe', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-fa-nginx-t-'));
  try {
    for (const f of fs.readdirSync(path.join(RECIPES, 'nginx'))) fs.copyFileSync(path.join(RECIPES, 'nginx', f), path.join(dir, f));
    fs.mkdirSync(path.join(dir, 'tmp'));
    check(PROXIES.nginx.binary, ['-t', '-q', '-p', `${dir}/`, '-c', 'nginx.conf', '-e', 'stderr']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('caddy validate accepts the Caddyfile', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-fa-caddy-v-'));
  try {
    check(PROXIES.caddy.binary, ['validate', '--config', path.join(RECIPES, 'caddy/Caddyfile'), '--adapter', 'caddyfile'],
      { env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir } });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('envoy --mode validate accepts envoy.yaml', () => {
  check(PROXIES.envoy.binary, ['--mode', 'validate', '-c', path.join(RECIPES, 'envoy/envoy.yaml'), '--log-level', 'error']);
});

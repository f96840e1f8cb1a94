// Smoke test of the test OpenID provider (server.js), with plain fetch and no browser.
//   cd tests/e2e && node --test provider/
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

const SERVER = new URL('./server.js', import.meta.url).pathname;
const KC = '/protocol/openid-connect';
const GATEWAY = 'http://127.0.0.1:54321'; // nothing listens there: redirects are only read
const SECRETS = {
  portcullis: 'portcullis-secret-0123456789abcdef',
  'billing-service': 'billing-secret-0123456789abcdef',
  'shipping-service': 'shipping-secret-0123456789abcdef',
  'opaque-service': 'opaque-secret-0123456789abcdef',
  'es256-service': 'es256-secret-0123456789abcdef',
  'other-audience-service': 'other-audience-secret-0123456789abcdef',
};

// ------------------------------------------------------------ helpers

// Whatever way this test file ends, no provider outlives it.
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

function startProvider(args = []) {
  const child = spawn(process.execPath, [SERVER, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no READY line within 15 s; stderr:\n${stderr}`));
    }, 15000);
    child.once('exit', (code) => reject(new Error(`provider exited ${code}; stderr:\n${stderr}`)));
    child.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('READY '));
      if (line) {
        clearTimeout(timer);
        const ready = JSON.parse(line.slice('READY '.length));
        resolve({ child, ...ready, stdout: () => out, stderr: () => stderr });
      }
    });
  });
}

function stopProvider(op) {
  if (op.child.exitCode !== null) return Promise.resolve(op.child.exitCode);
  return new Promise((resolve) => {
    op.child.once('exit', (code, signal) => resolve(code ?? signal));
    op.child.kill('SIGTERM');
  });
}

const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function tokenRequest(op, params, auth) {
  const res = await fetch(`${op.issuer}${KC}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(auth ? { authorization: auth } : {}) },
    body: new URLSearchParams(params),
  });
  return { status: res.status, body: await res.json() };
}

function clientCredentials(op, clientId, scope) {
  return tokenRequest(op, { grant_type: 'client_credentials', ...(scope ? { scope } : {}) },
    basic(clientId, SECRETS[clientId]));
}

function decode(jwt) {
  const [h, p] = jwt.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

async function jwks(op) {
  return (await (await fetch(`${op.issuer}${KC}/certs`)).json()).keys;
}

// verifies a JWT's signature against the provider's JWKS; returns the decoded token
async function verify(op, jwt) {
  const { header, payload } = decode(jwt);
  const jwk = (await jwks(op)).find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is published`);
  const [h, p, s] = jwt.split('.');
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify(header.alg === 'ES256' ? 'sha256' : 'RSA-SHA256', Buffer.from(`${h}.${p}`), {
    key, dsaEncoding: 'ieee-p1363',
  }, Buffer.from(s, 'base64url'));
  assert.ok(ok, 'signature verifies');
  return { header, payload };
}

// A cookie jar of one: every cookie is sent everywhere (paths ignored), good enough here.
class Browser {
  cookies = new Map();

  async get(url, init = {}) {
    const res = await fetch(url, {
      ...init,
      redirect: 'manual',
      headers: { ...init.headers, cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
      const expired = attrs.some((a) => /expires=thu, 01 jan 1970/i.test(a.trim()));
      if (expired || value === '') this.cookies.delete(name); else this.cookies.set(name, value);
    }
    return res;
  }

  post(url, form) {
    return this.get(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
  }

  // follows redirects until one leaves the provider (returns that Location) or a page is shown
  async follow(url, op) {
    let res = await this.get(url);
    while (res.status === 302 || res.status === 303) {
      const next = new URL(res.headers.get('location'), url).href;
      if (!next.startsWith(op.issuer)) return { location: next, res };
      url = next;
      res = await this.get(url);
    }
    return { res, url, html: await res.text() };
  }
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.hash('sha256', verifier, 'base64url') };
}

function authUrl(op, params) {
  const url = new URL(`${op.issuer}${KC}/auth`);
  for (const [k, v] of Object.entries({ client_id: 'portcullis', scope: 'openid profile email', ...params })) {
    url.searchParams.set(k, v);
  }
  return url.href;
}

const formField = (html, name) => html.match(new RegExp(`name="${name}" value="([^"]*)"`))?.[1];
const formAction = (html) => html.match(/<form[^>]*action="([^"]*)"/)?.[1].replaceAll('&amp;', '&');

// Logs in through the login form; returns where the provider finally redirected to.
async function login(browser, op, url, username, password) {
  const page = await browser.follow(url, op);
  assert.match(page.html, /id="login"/, 'the login form is shown');
  assert.match(page.url, /\/login-actions\//);
  const res = await browser.post(page.url, { username, password });
  if (res.status === 200) return { html: await res.text() };
  assert.equal(res.status, 303);
  return browser.follow(new URL(res.headers.get('location'), page.url).href, op);
}

// ------------------------------------------------------------ tests

describe('test OpenID provider', () => {
  let op;
  let keysFile;

  before(async () => {
    keysFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'op-keys-')), 'jwks.json');
    op = await startProvider(['--keys', keysFile]);
  });

  after(async () => {
    if (op) await stopProvider(op);
    fs.rmSync(path.dirname(keysFile), { recursive: true, force: true });
  });

  test('prints one READY line with the Keycloak-style issuer', () => {
    assert.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+\/realms\/internal$/);
    assert.equal(op.issuer, `http://127.0.0.1:${op.port}/realms/internal`);
    assert.match(op.stdout(), /^READY \{"issuer": "[^"]+", "port": \d+\}\n$/);
  });

  test('discovery uses Keycloak paths', async () => {
    const res = await fetch(`${op.issuer}/.well-known/openid-configuration`);
    assert.equal(res.status, 200);
    const d = await res.json();
    assert.equal(d.issuer, op.issuer);
    const at = (p) => `${op.issuer}${KC}${p}`;
    assert.equal(d.authorization_endpoint, at('/auth'));
    assert.equal(d.token_endpoint, at('/token'));
    assert.equal(d.jwks_uri, at('/certs'));
    assert.equal(d.userinfo_endpoint, at('/userinfo'));
    assert.equal(d.end_session_endpoint, at('/logout'));
    assert.equal(d.introspection_endpoint, at('/token/introspect'));
    assert.equal(d.revocation_endpoint, at('/revoke'));
    for (const g of ['authorization_code', 'refresh_token', 'implicit', 'client_credentials']) {
      assert.ok(d.grant_types_supported.includes(g), g);
    }
    assert.ok(d.response_types_supported.includes('id_token token'));
    assert.ok(d.response_modes_supported.includes('form_post'));
    assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
    assert.equal(d.backchannel_logout_supported, true);
  });

  test('JWKS publishes one RS256 and one ES256 public key', async () => {
    const keys = await jwks(op);
    assert.deepEqual(keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
    for (const k of keys) {
      assert.equal(k.use, 'sig');
      assert.ok(k.kid);
      assert.equal(k.d, undefined, 'no private part');
    }
  });

  test('client credentials: a Keycloak-shaped RS256 JWT', async () => {
    const { status, body } = await clientCredentials(op, 'billing-service', 'orders:read orders:write orders:admin');
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 300);
    assert.equal(body.scope, 'orders:read orders:write', 'a scope the client may not have is dropped');
    const { header, payload: t } = await verify(op, body.access_token);
    assert.equal(header.alg, 'RS256');
    assert.equal(header.typ, 'JWT');
    assert.equal(t.iss, op.issuer);
    assert.equal(t.azp, 'billing-service');
    assert.equal(t.client_id, 'billing-service');
    assert.equal(t.sub, 'billing-service');
    assert.deepEqual(t.aud, ['portcullis', 'account']);
    assert.equal(t.scope, 'orders:read orders:write');
    assert.equal(t.typ, 'Bearer');
    assert.equal(t.preferred_username, 'service-account-billing-service');
    assert.deepEqual(t.realm_access, { roles: ['service'] });
    assert.deepEqual(t.resource_access, { portcullis: { roles: ['orders-writer'] } });
    assert.equal(t.exp - t.iat, 300);
  });

  test('client credentials: client_secret_post works too; no scope asked, no scope given', async () => {
    const { status, body } = await tokenRequest(op, {
      grant_type: 'client_credentials', client_id: 'shipping-service', client_secret: SECRETS['shipping-service'],
    });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(decode(body.access_token).payload.scope, undefined);
  });

  test('client credentials: a wrong secret or unknown client is refused', async () => {
    let r = await tokenRequest(op, { grant_type: 'client_credentials' }, basic('billing-service', 'wrong'));
    assert.equal(r.status, 401);
    assert.equal(r.body.error, 'invalid_client');
    r = await tokenRequest(op, { grant_type: 'client_credentials' }, basic('nobody', 'x'));
    assert.equal(r.status, 401);
  });

  test('per-client token shapes: ES256, single audience', async () => {
    const es = await clientCredentials(op, 'es256-service', 'orders:read');
    assert.equal((await verify(op, es.body.access_token)).header.alg, 'ES256');
    const other = await clientCredentials(op, 'other-audience-service', 'orders:read');
    assert.equal(decode(other.body.access_token).payload.aud, 'account');
  });

  test('opaque tokens are introspected at the Keycloak path', async () => {
    const { body } = await clientCredentials(op, 'opaque-service', 'orders:read');
    assert.doesNotMatch(body.access_token, /\./, 'opaque');
    const introspect = (token, auth) => fetch(`${op.issuer}${KC}/token/introspect`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
      body: new URLSearchParams({ token }),
    });
    let res = await introspect(body.access_token, basic('portcullis', SECRETS.portcullis));
    assert.equal(res.status, 200);
    const i = await res.json();
    assert.equal(i.active, true);
    assert.equal(i.client_id, 'opaque-service');
    assert.equal(i.azp, 'opaque-service');
    assert.equal(i.scope, 'orders:read');
    assert.equal(i.aud, 'portcullis');
    assert.equal(i.iss, op.issuer);
    assert.deepEqual(i.realm_access, { roles: ['service'] });
    assert.equal(i.token_type, 'Bearer');
    assert.ok(i.exp > Date.now() / 1000);

    res = await introspect('not-a-token', basic('portcullis', SECRETS.portcullis));
    assert.deepEqual(await res.json(), { active: false });
    res = await introspect(body.access_token, basic('portcullis', 'wrong'));
    assert.equal(res.status, 401);
  });

  test('code flow + PKCE: alice logs in, any loopback port, refresh, logout', async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const redirectUri = `${GATEWAY}/_portcullis/callback`;
    const url = authUrl(op, {
      response_type: 'code', redirect_uri: redirectUri, state: 's1', nonce: 'n1',
      code_challenge: challenge, code_challenge_method: 'S256',
    });

    // a wrong password shows the form again
    const wrong = await login(new Browser(), op, url, 'alice', 'nope');
    assert.match(wrong.html, /id="error"/);

    const { location } = await login(browser, op, url, 'alice', 'alice-password');
    assert.ok(location.startsWith(`${redirectUri}?`), location);
    const cb = new URL(location).searchParams;
    assert.equal(cb.get('state'), 's1');
    assert.equal(cb.get('iss'), op.issuer);
    for (const name of browser.cookies.keys()) assert.ok(name.startsWith('op_'), name);

    const { status, body } = await tokenRequest(op, {
      grant_type: 'authorization_code', code: cb.get('code'), redirect_uri: redirectUri, code_verifier: verifier,
    }, basic('portcullis', SECRETS.portcullis));
    assert.equal(status, 200, JSON.stringify(body));
    assert.ok(body.refresh_token, 'a refresh token without offline_access');
    assert.equal(body.scope, 'openid profile email');

    const { payload: at } = await verify(op, body.access_token);
    assert.equal(at.sub, '6a1f3c2e-0000-4000-8000-00000000a11c');
    assert.equal(at.azp, 'portcullis');
    assert.deepEqual(at.aud, ['portcullis', 'account']);
    assert.equal(at.preferred_username, 'alice');
    assert.equal(at.email, 'alice@example.com');
    assert.equal(at.email_verified, true);
    assert.deepEqual(at.groups, ['/staff', '/minio-users']);
    assert.deepEqual(at.realm_access, { roles: ['minio-user', 'offline_access'] });
    assert.deepEqual(at.resource_access, { portcullis: { roles: ['admin'] } });
    assert.equal(at.scope, 'openid profile email');
    assert.equal(at.typ, 'Bearer');

    const { payload: id } = await verify(op, body.id_token);
    assert.equal(id.aud, 'portcullis');
    assert.equal(id.nonce, 'n1');
    assert.equal(id.preferred_username, 'alice');
    assert.deepEqual(id.groups, ['/staff', '/minio-users']);
    assert.deepEqual(id.realm_access, { roles: ['minio-user', 'offline_access'] });
    assert.deepEqual(id.resource_access, { portcullis: { roles: ['admin'] } });
    assert.equal(id.email, 'alice@example.com');

    const refreshed = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: body.refresh_token },
      basic('portcullis', SECRETS.portcullis));
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal(decode(refreshed.body.access_token).payload.preferred_username, 'alice');
    assert.ok(refreshed.body.id_token);
    assert.equal(refreshed.body.refresh_token, body.refresh_token, 'not rotated by default');

    // SSO: a second login request needs no form
    const sso = await browser.follow(authUrl(op, {
      response_type: 'code', redirect_uri: `http://127.0.0.1:40001/_portcullis/callback`,
      code_challenge: challenge, code_challenge_method: 'S256',
    }), op);
    assert.match(sso.location, /^http:\/\/127\.0\.0\.1:40001\/_portcullis\/callback\?code=/);

    // RP-initiated logout: a self-submitting form, then back to any path of the gateway
    const back = `${GATEWAY}/some/page?x=1`;
    const logoutUrl = new URL(`${op.issuer}${KC}/logout`);
    logoutUrl.searchParams.set('id_token_hint', body.id_token);
    logoutUrl.searchParams.set('client_id', 'portcullis');
    logoutUrl.searchParams.set('post_logout_redirect_uri', back);
    const confirm = await browser.follow(logoutUrl.href, op);
    assert.equal(confirm.res.status, 200);
    assert.match(confirm.html, /id="logout"/);
    const done = await browser.post(new URL(formAction(confirm.html), op.issuer).href, {
      xsrf: formField(confirm.html, 'xsrf'), logout: 'yes',
    });
    assert.equal(done.status, 303);
    assert.equal(done.headers.get('location'), back);

    // the provider session is over: its refresh token too, and the next login asks again
    const dead = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: body.refresh_token },
      basic('portcullis', SECRETS.portcullis));
    assert.equal(dead.body.error, 'invalid_grant');
    const relogin = await browser.follow(url, op);
    assert.match(relogin.html, /id="login"/);

    // a code is single-use (a replay also revokes everything issued from its grant)
    const again = await tokenRequest(op, {
      grant_type: 'authorization_code', code: cb.get('code'), redirect_uri: redirectUri, code_verifier: verifier,
    }, basic('portcullis', SECRETS.portcullis));
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('post_logout_redirect_uri elsewhere than loopback is refused', async () => {
    const u = new URL(`${op.issuer}${KC}/logout`);
    u.searchParams.set('client_id', 'portcullis');
    u.searchParams.set('post_logout_redirect_uri', 'http://evil.example/');
    const res = await fetch(u);
    assert.equal(res.status, 400);
  });

  test('code flow without PKCE is refused', async () => {
    const res = await fetch(authUrl(op, {
      response_type: 'code', redirect_uri: `${GATEWAY}/_portcullis/callback`,
    }), { redirect: 'manual' });
    assert.equal(res.status, 303);
    const loc = new URL(res.headers.get('location'));
    assert.equal(loc.origin + loc.pathname, `${GATEWAY}/_portcullis/callback`);
    assert.equal(loc.searchParams.get('error'), 'invalid_request');
  });

  test('implicit id_token token with form_post on an http loopback redirect: bob', async () => {
    const browser = new Browser();
    const redirectUri = 'http://127.0.0.1:40002/_portcullis/callback';
    const url = authUrl(op, {
      response_type: 'id_token token', response_mode: 'form_post', redirect_uri: redirectUri,
      nonce: 'n2', state: 's2',
    });
    const page = await login(browser, op, url, 'bob', 'bob-password');
    assert.equal(page.res.status, 200);
    assert.equal(formAction(page.html), redirectUri);
    assert.equal(formField(page.html, 'state'), 's2');
    const { payload: at } = await verify(op, formField(page.html, 'access_token'));
    assert.equal(at.preferred_username, 'bob');
    assert.deepEqual(at.realm_access, { roles: ['offline_access'] });
    assert.deepEqual(at.resource_access, {});
    assert.deepEqual(at.aud, ['portcullis', 'account']);
    const { payload: id } = await verify(op, formField(page.html, 'id_token'));
    assert.equal(id.nonce, 'n2');
    assert.deepEqual(id.groups, ['/staff']);
  });

  test('unregistered redirect URIs are refused', async () => {
    for (const redirectUri of ['http://127.0.0.1:40003/elsewhere', 'http://evil.example/_portcullis/callback']) {
      const { challenge } = pkce();
      const res = await fetch(authUrl(op, {
        response_type: 'code', redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256',
      }), { redirect: 'manual' });
      assert.equal(res.status, 400, redirectUri);
    }
  });

  test('back-channel logout reaches the gateway; sessions survive a key rotation', async () => {
    const received = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; }).on('end', () => {
        received.push({ url: req.url, body: new URLSearchParams(body) });
        res.writeHead(200).end();
      });
    });
    await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const bcUri = `http://127.0.0.1:${receiver.address().port}/_portcullis/backchannel-logout`;
    try {
      let res = await fetch(`http://127.0.0.1:${op.port}/__test/backchannel-logout-uri`, {
        method: 'POST', body: JSON.stringify({ uri: bcUri }),
      });
      assert.equal(res.status, 200);

      const browser = new Browser();
      const { verifier, challenge } = pkce();
      const redirectUri = `${GATEWAY}/_portcullis/callback`;
      const { location } = await login(browser, op, authUrl(op, {
        response_type: 'code', redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256',
      }), 'alice', 'alice-password');
      const { body } = await tokenRequest(op, {
        grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
        redirect_uri: redirectUri, code_verifier: verifier,
      }, basic('portcullis', SECRETS.portcullis));
      const { payload: id } = decode(body.id_token);
      assert.ok(id.sid, 'the ID token carries sid');
      assert.equal(decode(body.access_token).payload.sid, id.sid, 'so does the access token');

      // a rotation swaps the Provider: the login session, grant and refresh token survive
      res = await fetch(`http://127.0.0.1:${op.port}/__test/rotate`, { method: 'POST' });
      const { signing_kid: kid } = await res.json();
      const sso = await browser.follow(authUrl(op, {
        response_type: 'code', redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256',
      }), op);
      assert.ok(sso.location?.startsWith(`${redirectUri}?code=`), 'no login form after a rotation');
      const refreshed = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: body.refresh_token },
        basic('portcullis', SECRETS.portcullis));
      assert.equal(refreshed.status, 200);
      assert.equal(decode(refreshed.body.access_token).header.kid, kid);

      // logging out at the provider posts a logout_token to the gateway
      const confirm = await browser.follow(`${op.issuer}${KC}/logout?client_id=portcullis`, op);
      await browser.post(new URL(formAction(confirm.html), op.issuer).href, {
        xsrf: formField(confirm.html, 'xsrf'), logout: 'yes',
      });
      assert.equal(received.length, 1, op.stderr());
      assert.equal(received[0].url, '/_portcullis/backchannel-logout');
      const { payload: lt } = await verify(op, received[0].body.get('logout_token'));
      assert.equal(lt.iss, op.issuer);
      assert.equal(lt.aud, 'portcullis');
      assert.equal(lt.sub, id.sub);
      assert.equal(lt.sid, id.sid);
      assert.ok(lt.events['http://schemas.openid.net/event/backchannel-logout']);
    } finally {
      await fetch(`http://127.0.0.1:${op.port}/__test/backchannel-logout-uri`, {
        method: 'POST', body: JSON.stringify({ uri: null }),
      });
      receiver.close();
    }
  });

  test('key rotation: a new kid signs new tokens, old kids stay until dropped', async () => {
    const before = (await jwks(op)).map((k) => k.kid);
    const old = await clientCredentials(op, 'billing-service', 'orders:read');

    let res = await fetch(`http://127.0.0.1:${op.port}/__test/rotate`, { method: 'POST' });
    assert.equal(res.status, 200);
    const rotated = await res.json();
    assert.ok(!before.includes(rotated.signing_kid));
    assert.deepEqual(rotated.kids, [rotated.signing_kid, ...before]);
    assert.deepEqual((await jwks(op)).map((k) => k.kid), rotated.kids);

    const fresh = await clientCredentials(op, 'billing-service', 'orders:read');
    assert.equal((await verify(op, fresh.body.access_token)).header.kid, rotated.signing_kid);
    await verify(op, old.body.access_token); // the old kid is still published

    res = await fetch(`http://127.0.0.1:${op.port}/__test/drop-old-keys`, { method: 'POST' });
    const dropped = await res.json();
    const keys = await jwks(op);
    assert.deepEqual(keys.map((k) => k.kid), dropped.kids);
    assert.deepEqual(keys.map((k) => k.alg).sort(), ['ES256', 'RS256']);
    assert.equal(keys.find((k) => k.alg === 'RS256').kid, rotated.signing_kid);
    assert.ok(!dropped.kids.includes(decode(old.body.access_token).header.kid));
  });

  test('a restart with the same --keys file keeps the kids; SIGTERM exits 0', async () => {
    const kids = (await jwks(op)).map((k) => k.kid);
    assert.equal(await stopProvider(op), 0);
    op = await startProvider(['--keys', keysFile]);
    assert.deepEqual((await jwks(op)).map((k) => k.kid), kids);
    const { body } = await clientCredentials(op, 'billing-service', 'orders:read');
    assert.equal(decode(body.access_token).header.kid, kids[0]);
  });
});

describe('test OpenID provider with --rotate-refresh-tokens --access-ttl 60', () => {
  let op;
  before(async () => { op = await startProvider(['--rotate-refresh-tokens', '--access-ttl', '60']); });
  after(async () => { if (op) await stopProvider(op); });

  test('each refresh returns a new refresh token; reusing a spent one revokes the grant', async () => {
    const browser = new Browser();
    const { verifier, challenge } = pkce();
    const redirectUri = `${GATEWAY}/_portcullis/callback`;
    const { location } = await login(browser, op, authUrl(op, {
      response_type: 'code', redirect_uri: redirectUri, code_challenge: challenge, code_challenge_method: 'S256',
    }), 'bob', 'bob-password');
    const auth = basic('portcullis', SECRETS.portcullis);
    const first = await tokenRequest(op, {
      grant_type: 'authorization_code', code: new URL(location).searchParams.get('code'),
      redirect_uri: redirectUri, code_verifier: verifier,
    }, auth);
    assert.equal(first.body.expires_in, 60);
    const second = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token }, auth);
    assert.equal(second.status, 200);
    assert.notEqual(second.body.refresh_token, first.body.refresh_token);
    const reuse = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: first.body.refresh_token }, auth);
    assert.equal(reuse.body.error, 'invalid_grant');
    const revoked = await tokenRequest(op, { grant_type: 'refresh_token', refresh_token: second.body.refresh_token }, auth);
    assert.equal(revoked.body.error, 'invalid_grant');
  });
});

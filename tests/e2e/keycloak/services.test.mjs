// Services against the real Keycloak: client-credentials JWTs on a `bearer` route with
// `allow.clients` and scopes by method, the missing-audience pitfall, Keycloak's
// introspection endpoint, and a key rotation done through Keycloak's admin REST API under
// steady traffic. One Keycloak for the file; a gateway per test.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { echoed, jwtClaims, startEcho, startGateway } from '../browser/harness.mjs';
import { SECRETS, startKeycloak } from './keycloak.mjs';
import { metric, metricsOf, portcullis, tail } from './support.mjs';

const ORDERS = `
[[routes]]
name = "orders"
path = "/api/orders/"
upstream = "{echo}"
auth = "bearer"
allow = { clients = ["billing-service", "shipping-service"] }
scopes = { read = ["orders:read"], write = ["orders:write"], DELETE = ["orders:admin"] }
`;

let kc;
let echo;

before(async () => {
  kc = await startKeycloak();
  echo = await startEcho();
});

after(async () => {
  await echo?.stop();
  await kc?.stop();
});

/** A gateway in front of the echo backend with the orders route; stopped after the test. */
async function gateway(t, { provider = '', routes = ORDERS } = {}) {
  const gw = await startGateway({ issuer: kc.issuer, echo: echo.url, provider, routes });
  t.after(() => gw.stop());
  return gw;
}

/** An access token of `client` from Keycloak's token endpoint (client credentials). */
async function tokenOf(client, scope) {
  return (await kc.token(client, SECRETS[client], { scope })).access_token;
}

function call(gw, method, p, token) {
  return fetch(gw.url(p), { method, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

describe('client-credentials tokens from Keycloak', () => {
  test('a service with orders:read reads orders, and the backend learns which service called', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('billing-service', 'orders:read orders:write');
    const r = await call(gw, 'GET', '/api/orders/42?full=1', token);
    assert.equal(r.status, 200, tail(gw));
    const seen = await r.json();
    assert.equal(seen.uri, '/api/orders/42?full=1');
    assert.deepEqual(echoed(seen, 'x-auth-request-client'), ['billing-service']);
    // Keycloak's `scope` also names the client's default scopes (profile, email).
    const scopes = echoed(seen, 'x-auth-request-scopes')[0]?.split(',') ?? [];
    for (const s of ['orders:read', 'orders:write']) assert.ok(scopes.includes(s), `scopes: ${scopes}`);
    // Keycloak's service-account user, from the profile scope's preferred_username.
    assert.deepEqual(echoed(seen, 'x-auth-request-user'), ['service-account-billing-service']);
    assert.deepEqual(echoed(seen, 'authorization'), [`Bearer ${token}`], 'the token is passed on unchanged');
  });

  test('DELETE without orders:admin is refused 403, naming the scope it needs', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('billing-service', 'orders:read orders:write');
    const r = await call(gw, 'DELETE', '/api/orders/42', token);
    assert.equal(r.status, 403, tail(gw));
    assert.equal(r.headers.get('www-authenticate'),
      'Bearer realm="portcullis", error="insufficient_scope", scope="orders:admin"');
    const posted = await call(gw, 'POST', '/api/orders/', token);
    assert.equal(posted.status, 200, 'orders:write covers POST');
  });

  test('a service with only orders:read cannot write', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('shipping-service', 'orders:read');
    assert.equal((await call(gw, 'GET', '/api/orders/1', token)).status, 200, tail(gw));
    const r = await call(gw, 'POST', '/api/orders/', token);
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('www-authenticate'),
      'Bearer realm="portcullis", error="insufficient_scope", scope="orders:write"');
  });

  test('a service outside allow.clients is refused even with every scope the method needs', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('reporting-service', 'orders:read orders:admin');
    assert.ok(jwtClaims(token).scope.split(' ').includes('orders:admin'));
    const r = await call(gw, 'DELETE', '/api/orders/1', token);
    assert.equal(r.status, 403, tail(gw));
    assert.doesNotMatch(r.headers.get('www-authenticate') ?? '', /insufficient_scope/,
      'an allow rule, not a scope, refused it');
  });

  test('Keycloak refuses a scope the client was not given, before the gateway sees a token', async () => {
    // What a service sees when it asks for more than its optional client scopes.
    await assert.rejects(kc.token('billing-service', SECRETS['billing-service'], { scope: 'orders:admin' }),
      /400 .*invalid_scope/);
  });

  test('a token without the gateway in aud (no audience mapper) is refused 401', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('no-audience-service', 'orders:read');
    assert.ok(![jwtClaims(token).aud].flat().includes('portcullis'), 'the pitfall: aud lacks portcullis');
    const before = metric(await metricsOf(gw), 'portcullis_auth_failures_total', { reason: 'audience_mismatch' });
    const r = await call(gw, 'GET', '/api/orders/1', token);
    assert.equal(r.status, 401, tail(gw));
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="portcullis", error="invalid_token"/);
    const after = metric(await metricsOf(gw), 'portcullis_auth_failures_total', { reason: 'audience_mismatch' });
    assert.equal(after - before, 1, 'counted as audience_mismatch');
  });

  test('explain --bearer says the audience is what is wrong', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('no-audience-service', 'orders:read');
    const out = await portcullis(['explain', '-c', path.join(gw.dir, 'gateway.toml'),
      'GET', gw.url('/api/orders/1'), '--bearer', token]);
    t.diagnostic(out.stdout);
    assert.match(out.stdout, /audience/i);
    assert.match(out.stdout, /decision: refuse \(401/);
  });

  test('explain --bearer names the token\'s aud and how to add the audience mapper in Keycloak',
    async (t) => {
      const gw = await gateway(t);
      const token = await tokenOf('no-audience-service', 'orders:read');
      const { stdout } = await portcullis(['explain', '-c', path.join(gw.dir, 'gateway.toml'),
        'GET', gw.url('/api/orders/1'), '--bearer', token]);
      // What a user needs: what the token says, what the gateway wants, where to fix it.
      assert.match(stdout, /"account"/, 'the aud the token carries');
      assert.match(stdout, /"portcullis"/, 'the audiences accepted');
      assert.match(stdout, /no-audience-service/, 'the client (azp) to fix');
      assert.match(stdout, /audience mapper|Audience/i);
      assert.match(stdout, /Included Client Audience/);
    });
});

describe('Keycloak introspection', () => {
  test('an opaque token is asked of Keycloak\'s introspection endpoint, and an inactive one is refused', async (t) => {
    const gw = await gateway(t, { provider: 'introspection = "auto"' });
    const before = metric(await metricsOf(gw), 'portcullis_introspections_total', { issuer: kc.issuer });
    const r = await call(gw, 'GET', '/api/orders/1', 'an-opaque-token-keycloak-never-issued');
    assert.equal(r.status, 401, tail(gw));
    assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    const after = metric(await metricsOf(gw), 'portcullis_introspections_total', { issuer: kc.issuer });
    assert.equal(after - before, 1, `one introspection at Keycloak:\n${await metricsOf(gw)}`);
  });

  test('check --online reaches Keycloak\'s introspection endpoint with the gateway\'s client', async (t) => {
    const gw = await gateway(t, { provider: 'introspection = "auto"' });
    const out = await portcullis(['check', '--online', '-c', path.join(gw.dir, 'gateway.toml')]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    assert.match(out.stdout, new RegExp(`introspection: ok at ${kc.issuer}/protocol/openid-connect/token/introspect`));
  });

  test('a lightweight access token is accepted through Keycloak\'s introspection endpoint',
    { todo: 'needs gateway change' }, async (t) => {
      // Keycloak's lightweight access tokens (client attribute
      // client.use.lightweight.access.token.enabled) leave aud, roles and client_id out of
      // the JWT and expect resource servers to introspect it; the introspection answer has
      // them all.
      await kc.updateClient('shipping-service', (c) => {
        c.attributes['client.use.lightweight.access.token.enabled'] = 'true';
      });
      t.after(() => kc.updateClient('shipping-service', (c) => {
        delete c.attributes['client.use.lightweight.access.token.enabled'];
      }));
      const gw = await gateway(t, { provider: 'introspection = "auto"' });
      const token = await tokenOf('shipping-service', 'orders:read');
      assert.equal(jwtClaims(token).aud, undefined, 'a lightweight token carries no aud');
      const r = await call(gw, 'GET', '/api/orders/1', token);
      assert.equal(r.status, 200, tail(gw));
      assert.deepEqual(echoed(await r.json(), 'x-auth-request-client'), ['shipping-service']);
    });
});

describe('key rotation in Keycloak', () => {
  test('a key rotated in and the old one disabled under steady traffic fails no request', async (t) => {
    const gw = await gateway(t);
    const realm = await kc.admin('GET', '');
    const keyProviders = () => kc.admin('GET', `/components?parent=${realm.id}&type=org.keycloak.keys.KeyProvider`);
    const old = (await keyProviders()).find((c) => c.providerId === 'rsa-generated');
    assert.ok(old, 'the realm has its generated RSA key');

    // Traffic: 4 callers in a loop, each request with the newest token Keycloak issued.
    let current = await tokenOf('billing-service', 'orders:read');
    const oldKid = JSON.parse(Buffer.from(current.split('.')[0], 'base64url')).kid;
    const results = [];
    let running = true;
    const until = Date.now() + 60000; // bound: the test never loops longer than this
    const caller = async () => {
      while (running && Date.now() < until) {
        const token = current;
        const { kid } = JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));
        const r = await call(gw, 'GET', '/api/orders/1', token);
        await r.arrayBuffer();
        results.push({ status: r.status, kid, www: r.headers.get('www-authenticate') });
      }
    };
    const renewer = async () => {
      while (running && Date.now() < until) {
        current = await tokenOf('billing-service', 'orders:read');
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const traffic = Promise.all([caller(), caller(), caller(), caller(), renewer()]);
    const waitFor = async (what, cond, ms = 20000) => {
      const end = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > end) throw new Error(`${what}: not after ${ms} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitFor('traffic with the old key', () => results.length >= 40);
      const fetchesBefore = metric(await metricsOf(gw), 'portcullis_jwks_fetches_total', { issuer: kc.issuer });

      // Rotate: a new generated RSA key with a higher priority signs from now on...
      await kc.admin('POST', '/components', {
        name: 'rsa-rotated',
        providerId: 'rsa-generated',
        providerType: 'org.keycloak.keys.KeyProvider',
        parentId: realm.id,
        config: { priority: [String(Number(old.config.priority?.[0] ?? 100) + 100)], keySize: ['2048'], algorithm: ['RS256'], active: ['true'], enabled: ['true'] },
      });
      await waitFor('a request with the new key', () => results.some((x) => x.kid !== oldKid));
      await waitFor('more requests with the new key', () => results.filter((x) => x.kid !== oldKid).length >= 40);
      // ...then the old key is disabled (gone from the JWKS).
      await kc.admin('PUT', `/components/${old.id}`, { ...old, config: { ...old.config, enabled: ['false'] } });
      const jwks = await (await fetch(`${kc.issuer}/protocol/openid-connect/certs`)).json();
      assert.ok(!jwks.keys.some((k) => k.kid === oldKid), 'the old key left the JWKS');
      const mark = results.length;
      await waitFor('traffic after the old key was disabled', () => results.length >= mark + 40);
      running = false;
      await traffic;

      const failed = results.filter((x) => x.status !== 200);
      assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${results.length} requests failed${tail(gw)}`);
      const fetchesAfter = metric(await metricsOf(gw), 'portcullis_jwks_fetches_total', { issuer: kc.issuer });
      assert.equal(fetchesAfter - fetchesBefore, 1, 'one JWKS fetch for the one new kid');
      t.diagnostic(`${results.length} requests, ${results.filter((x) => x.kid !== oldKid).length} with the new key, `
        + `${fetchesAfter - fetchesBefore} JWKS fetch`);
    } finally {
      running = false;
      await traffic.catch(() => {});
    }
  });

  test('a flood of tokens naming unknown kids costs at most one JWKS fetch per 10 s', async (t) => {
    const gw = await gateway(t);
    const token = await tokenOf('billing-service', 'orders:read');
    const [head, body, sig] = token.split('.');
    const header = JSON.parse(Buffer.from(head, 'base64url'));
    const forged = (i) => `${Buffer.from(JSON.stringify({ ...header, kid: `unknown-${i}` })).toString('base64url')}.${body}.${sig}`;
    const before = metric(await metricsOf(gw), 'portcullis_jwks_fetches_total', { issuer: kc.issuer });
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => call(gw, 'GET', '/api/orders/1', forged(i))));
    for (let i = 30; i < 60; i++) answers.push(await call(gw, 'GET', '/api/orders/1', forged(i)));
    const elapsed = Date.now() - started;
    assert.ok(answers.every((r) => r.status === 401), answers.map((r) => r.status).join());
    const fetches = metric(await metricsOf(gw), 'portcullis_jwks_fetches_total', { issuer: kc.issuer }) - before;
    assert.ok(fetches <= 1 + Math.floor(elapsed / 10000), `${fetches} JWKS fetches in ${elapsed} ms`);
    // The real token still passes.
    assert.equal((await call(gw, 'GET', '/api/orders/1', token)).status, 200);
  });
});

// The realm export as the real Keycloak holds it (what every other file of this suite and
// the Django example build on), and `portcullis check --online` against it: what the
// provider will refuse is told before any user meets it — each mistake exits 1 with one
// clear line that says what to change and where, and a correct configuration passes. One
// Keycloak for the file; no gateway runs (check only reads the configuration and asks
// Keycloak).
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, jwtClaims } from '../browser/harness.mjs';
import { SECRETS, startKeycloak } from './keycloak.mjs';
import { configFile, portcullis } from './support.mjs';

let kc;
let registered; // the public_url Keycloak knows

before(async () => {
  registered = `http://127.0.0.1:${await freePort()}`;
  kc = await startKeycloak({ gatewayUrls: [registered] });
});

after(async () => {
  await kc?.stop();
});

/** A gateway.toml for Keycloak with a login route and a bearer route. */
function config({
  publicUrl = registered, issuer = kc.issuer, secret = SECRETS.portcullis, provider = '',
} = {}) {
  return configFile(`[server]
listen = ["${new URL(publicUrl).host}"]
public_url = "${publicUrl}"

[provider]
issuer = "${issuer}"
client_id = "portcullis"
client_secret = "${secret}"
${provider}

[session]
secrets = ["keycloak-e2e-session-secret-0123456789abcdef"]

[[routes]]
name = "app"
path = "/app/"
upstream = "http://127.0.0.1:9"
auth = "login"

[[routes]]
name = "orders"
path = "/api/orders/"
upstream = "http://127.0.0.1:9"
auth = "bearer"
scopes = { read = ["orders:read"] }
`);
}

async function check(file) {
  const out = await portcullis(['check', '--online', '-c', file]);
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  const fails = out.stdout.split('\n').filter((l) => /\bFAIL\b/.test(l)).map((l) => l.trim());
  return { ...out, fails, all: `${out.stdout}${out.stderr}` };
}

describe('the realm export, as Keycloak holds it', () => {
  test('the realm is served at the issuer the gateway is configured with', async (t) => {
    t.diagnostic(`Keycloak ${kc.version} ready with realm ${kc.realm} in ${kc.startedMs} ms`);
    const r = await fetch(`${kc.issuer}/.well-known/openid-configuration`);
    assert.equal(r.status, 200);
    const d = await r.json();
    assert.equal(d.issuer, kc.issuer);
    assert.ok(d.end_session_endpoint, 'RP-initiated logout is offered');
    assert.equal(d.backchannel_logout_session_supported, true);
    assert.ok(d.introspection_endpoint);
    assert.ok(d.code_challenge_methods_supported.includes('S256'));
  });

  test('the gateway URLs given replace the export\'s own in the gateway clients', async () => {
    const c = await kc.client('portcullis');
    assert.deepEqual(c.redirectUris, [`${registered}/_portcullis/callback`]);
    assert.equal(c.attributes['post.logout.redirect.uris'], `${registered}/*`);
    assert.equal(c.attributes['backchannel.logout.url'], `${registered}/_portcullis/backchannel-logout`);
    assert.equal(c.attributes['backchannel.logout.session.required'], 'true');
    assert.equal(c.attributes['pkce.code.challenge.method'], 'S256');
    const spa = await kc.client('minio-console');
    assert.deepEqual(spa.redirectUris, [`${registered}/_portcullis/callback`]);
    assert.equal(spa.implicitFlowEnabled, true);
    assert.equal(spa.publicClient, true);
  });

  test('a service token names the gateway in aud only with the audience mapper', async () => {
    const billing = jwtClaims((await kc.token('billing-service', SECRETS['billing-service'],
      { scope: 'orders:read orders:write' })).access_token);
    assert.ok([billing.aud].flat().includes('portcullis'), JSON.stringify(billing));
    assert.equal(billing.azp, 'billing-service');
    assert.deepEqual(billing.scope.split(' ').filter((s) => s.startsWith('orders:')).sort(),
      ['orders:read', 'orders:write']);
    const pitfall = jwtClaims((await kc.token('no-audience-service', SECRETS['no-audience-service'],
      { scope: 'orders:read' })).access_token);
    assert.ok(![pitfall.aud].flat().includes('portcullis'), JSON.stringify(pitfall));
  });

  test('the users hold the roles and groups of the export', async () => {
    const alice = await kc.userId('alice');
    const groups = (await kc.admin('GET', `/users/${alice}/groups?briefRepresentation=true`)).map((g) => g.path);
    assert.deepEqual(groups.sort(), ['/minio-users', '/staff/engineering']);
    const roles = (await kc.admin('GET', `/users/${alice}/role-mappings`));
    const realmRoles = roles.realmMappings.map((r) => r.name);
    for (const r of ['admin', 'minio-user']) assert.ok(realmRoles.includes(r), realmRoles.join());
    assert.ok(roles.clientMappings.portcullis.mappings.some((r) => r.name === 'admin'));
  });

  test('a second Keycloak is independent of the first', { skip: !process.env.KEYCLOAK_TWICE }, async () => {
    const other = await startKeycloak();
    try {
      assert.notEqual(other.origin, kc.origin);
      const c = await other.client('portcullis');
      assert.deepEqual(c.redirectUris, ['http://127.0.0.1:8080/_portcullis/callback']);
    } finally {
      await other.stop();
    }
  });
});

describe('check --online against Keycloak', () => {
  test('a correct configuration passes', async () => {
    const r = await check(config());
    assert.equal(r.code, 0, r.all);
    assert.deepEqual(r.fails, []);
    assert.match(r.stdout, /discovery: ok/);
    assert.match(r.stdout, /introspection: ok/);
  });

  test('a correct configuration for a default Keycloak realm passes without a warning',
    async () => {
      // A Keycloak realm signs with RS256 only; the default algorithms also allow ES256,
      // which is no mistake of the user's.
      const r = await check(config());
      assert.equal(r.code, 0, r.all);
      assert.doesNotMatch(r.stdout, /warning/, r.stdout);
    });

  test('an unknown realm exits 1 with one line naming it', async () => {
    const r = await check(config({ issuer: `${kc.origin}/realms/nope` }));
    assert.equal(r.code, 1, r.all);
    assert.equal(r.fails.length, 1, r.all);
    assert.match(r.fails[0], /realms\/nope/);
    assert.match(r.fails[0], /404/);
  });

  test('a wrong client secret exits 1 with one line naming client and secret', async () => {
    const r = await check(config({ secret: 'not-the-secret-0123456789abcdef' }));
    assert.equal(r.code, 1, r.all);
    assert.equal(r.fails.length, 1, r.all);
    assert.match(r.fails[0], /client_secret/);
    assert.match(r.fails[0], /"portcullis"/);
  });

  test('a wrong client secret is found without introspection too (the code exchange needs it)',
    async () => {
      const r = await check(config({ secret: 'not-the-secret-0123456789abcdef', provider: 'introspection = "off"' }));
      assert.equal(r.code, 1, r.all);
      assert.equal(r.fails.length, 1, r.all);
      assert.match(r.fails[0], /client_secret/);
      assert.match(r.fails[0], /Credentials/, 'where in Keycloak\'s console: Clients → portcullis → Credentials');
    });

  test('a redirect URI Keycloak does not accept exits 1 naming the exact URI to register, and where',
    async () => {
      const unregistered = `http://127.0.0.1:${await freePort()}`;
      const r = await check(config({ publicUrl: unregistered }));
      assert.equal(r.code, 1, r.all);
      assert.equal(r.fails.length, 1, r.all);
      assert.ok(r.fails[0].includes(`${unregistered}/_portcullis/callback`), r.fails[0]);
      assert.match(r.fails[0], /Valid redirect URIs/, 'where in Keycloak\'s console');
    });

  test('a post-logout redirect URI Keycloak does not accept exits 1 naming the URI and where',
    async (t) => {
      // Logout would otherwise end at Keycloak's "Invalid redirect uri" page.
      await kc.updateClient('portcullis', (c) => { c.attributes['post.logout.redirect.uris'] = 'https://elsewhere.example/*'; });
      t.after(() => kc.updateClient('portcullis', (c) => { c.attributes['post.logout.redirect.uris'] = `${registered}/*`; }));
      const r = await check(config());
      assert.equal(r.code, 1, r.all);
      assert.equal(r.fails.length, 1, r.all);
      assert.ok(r.fails[0].includes(`${registered}/`), r.fails[0]);
      assert.match(r.fails[0], /Valid post logout redirect URIs/);
    });

  test('the standard flow switched off at Keycloak exits 1 with one line saying so',
    async (t) => {
      await kc.updateClient('portcullis', (c) => { c.standardFlowEnabled = false; });
      t.after(() => kc.updateClient('portcullis', (c) => { c.standardFlowEnabled = true; }));
      const r = await check(config());
      assert.equal(r.code, 1, r.all);
      assert.equal(r.fails.length, 1, r.all);
      assert.match(r.fails[0], /[Ss]tandard flow/);
    });
});

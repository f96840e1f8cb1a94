// The real Keycloak starts, holds the realm export as written, and stops: what every other
// file of this suite (and the Django example) builds on. No gateway here.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jwtClaims } from '../browser/harness.mjs';
import { SECRETS, startKeycloak } from './keycloak.mjs';

const GATEWAY = 'http://127.0.0.1:18443';
let kc;

before(async () => {
  kc = await startKeycloak({ gatewayUrls: [GATEWAY] });
});

after(async () => {
  await kc?.stop();
});

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
  assert.deepEqual(c.redirectUris, [`${GATEWAY}/_portcullis/callback`]);
  assert.equal(c.attributes['post.logout.redirect.uris'], `${GATEWAY}/*`);
  assert.equal(c.attributes['backchannel.logout.url'], `${GATEWAY}/_portcullis/backchannel-logout`);
  assert.equal(c.attributes['backchannel.logout.session.required'], 'true');
  assert.equal(c.attributes['pkce.code.challenge.method'], 'S256');
  const spa = await kc.client('minio-console');
  assert.deepEqual(spa.redirectUris, [`${GATEWAY}/_portcullis/callback`]);
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

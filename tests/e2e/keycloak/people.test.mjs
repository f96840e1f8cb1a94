// People against the real Keycloak, in Debian's chromium: Keycloak's own login form, the
// identity it puts in tokens (realm and client roles, group paths), 403 without a loop,
// RP-initiated logout that ends the Keycloak session, an administrator's sign-out reaching
// the back-channel logout endpoint, refresh with Keycloak's rotating refresh tokens under
// concurrent requests, and the implicit form_post flow with the SPA client. One Keycloak
// and one browser for the file; a gateway and a browser context per test.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';
import {
  ROUTES, documents, echoed, jwtClaims, launchBrowser, newContext, startEcho, startGateway,
} from '../browser/harness.mjs';
import { USERS, startKeycloak } from './keycloak.mjs';
import { startGatewayWith, tail } from './support.mjs';

let kc;
let echo;
let browser;

before(async () => {
  kc = await startKeycloak();
  echo = await startEcho();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await echo?.stop();
  await kc?.stop();
});

/** A gateway for client `portcullis`, registered in Keycloak; stopped after the test. */
async function gateway(t, { session = '', extra = '' } = {}) {
  const gw = await startGateway({ issuer: kc.issuer, echo: echo.url, session, extra, routes: ROUTES });
  t.after(() => gw.stop());
  await kc.useGateway(gw.origin);
  return gw;
}

async function freshPage(t) {
  const { context, log } = await newContext(browser);
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  return { context, page, log, docs: documents(page) };
}

/** Waits for Keycloak's own login form (not a look-alike's) in `page`. */
async function waitForKeycloakForm(page) {
  await page.waitForURL((u) => u.origin === kc.origin, { waitUntil: 'load' });
  await page.locator('#kc-form-login').waitFor();
}

/** Fills Keycloak's login form and waits until the browser is back on `origin`. */
async function signIn(page, user, origin) {
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await Promise.all([
    page.waitForURL((u) => u.origin === origin, { waitUntil: 'load' }),
    page.click('#kc-login'),
  ]);
}

const authRequests = (log) => log.requests
  .filter((r) => r.url.startsWith(`${kc.issuer}/protocol/openid-connect/auth`));

/** Polls `cond` (async) every 100 ms until it holds, at most `ms`. */
async function eventually(what, cond, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What a fetch from the page to `path` answers (the page's cookies, no redirect followed). */
function pageFetch(page, p) {
  return page.evaluate(async (u) => {
    const r = await fetch(u, { redirect: 'manual', headers: { accept: 'application/json' } });
    return { status: r.status, body: await r.text() };
  }, p);
}

describe('browser login at Keycloak, code flow', () => {
  test('a page load goes through Keycloak\'s own form and lands on the URL first asked for', async (t) => {
    const gw = await gateway(t);
    const { page, log, docs } = await freshPage(t);
    const start = gw.url('/app/reports?year=2026&q=a%20b');
    await page.goto(start);
    await waitForKeycloakForm(page);
    const [auth] = authRequests(log).map((r) => new URL(r.url));
    assert.equal(auth.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(auth.searchParams.get('redirect_uri'), gw.url('/_portcullis/callback'));
    await signIn(page, USERS.alice, gw.origin);

    assert.equal(page.url(), start, tail(gw));
    const shown = docs.last();
    assert.equal(shown.status(), 200, tail(gw));
    const seen = await shown.json();
    assert.equal(seen.uri, '/app/reports?year=2026&q=a%20b');
    assert.deepEqual(log.offLoopback, []);
  });

  test('realm roles, client roles and group paths reach the backend', async (t) => {
    const gw = await gateway(t);
    const { page, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.alice, gw.origin);
    const seen = await docs.last().json();
    assert.deepEqual(echoed(seen, 'x-auth-request-user'), ['alice']);
    assert.deepEqual(echoed(seen, 'x-auth-request-email'), ['alice@example.com']);
    const roles = echoed(seen, 'x-auth-request-roles')[0]?.split(',') ?? [];
    // realm roles (minio-user, admin) and portcullis' client roles (orders-admin) alike
    for (const r of ['admin', 'minio-user', 'orders-admin', 'user']) assert.ok(roles.includes(r), `roles: ${roles}`);
    assert.deepEqual(echoed(seen, 'x-auth-request-groups'), ['/minio-users,/staff/engineering']);
    assert.ok(echoed(seen, 'cookie').every((c) => !c.includes('_portcullis')), 'no gateway cookie upstream');
  });

  test('a user without the role gets 403 from the gateway, not a loop through Keycloak', async (t) => {
    const gw = await gateway(t);
    const { page, log, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.bob, gw.origin);
    assert.equal(page.url(), gw.url('/app/'));
    assert.equal(docs.last().status(), 403, tail(gw));
    await page.waitForLoadState('networkidle');
    assert.equal(authRequests(log).length, 1, 'one trip to Keycloak');
    const again = await page.reload();
    assert.equal(again.status(), 403);
    assert.equal(authRequests(log).length, 1, 'a reload does not go back to Keycloak');
  });

  test('logout at the gateway ends the Keycloak session too: the next visit shows Keycloak\'s form', async (t) => {
    const gw = await gateway(t);
    const { page, log, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.alice, gw.origin);
    assert.equal(docs.last().status(), 200);

    await page.goto(gw.url('/_portcullis/logout?rd=/app/after'));
    // Keycloak's end-session endpoint with id_token_hint returns without asking, to /app/after,
    // which (no session) goes to Keycloak again — and Keycloak must ask for the password.
    await waitForKeycloakForm(page);
    const logout = log.requests.map((r) => new URL(r.url))
      .find((u) => u.href.startsWith(`${kc.issuer}/protocol/openid-connect/logout`));
    assert.ok(logout, 'the browser went to Keycloak\'s end-session endpoint');
    assert.ok(logout.searchParams.get('id_token_hint'), logout.href);
    assert.equal(logout.searchParams.get('post_logout_redirect_uri'), gw.url('/app/after'));
    assert.equal(logout.searchParams.get('client_id'), 'portcullis');
    await signIn(page, USERS.alice, gw.origin);
    assert.equal(page.url(), gw.url('/app/after'));
  });

  test('an administrator\'s sign-out of alice in Keycloak ends her gateway session (back-channel)', async (t) => {
    const gw = await gateway(t);
    // A recorder in front of the gateway's back-channel endpoint, to see Keycloak's logout token.
    const seen = [];
    const recorder = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', async () => {
        const r = await fetch(gw.url('/_portcullis/backchannel-logout'), {
          method: req.method, headers: { 'content-type': req.headers['content-type'] ?? '' }, body,
        });
        seen.push({ method: req.method, type: req.headers['content-type'], body, status: r.status });
        res.writeHead(r.status, { 'content-type': 'text/plain' }).end(await r.text());
      });
    });
    await new Promise((r) => recorder.listen(0, '127.0.0.1', r));
    t.after(() => new Promise((r) => recorder.close(r)));
    await kc.updateClient('portcullis', (c) => {
      c.attributes['backchannel.logout.url'] = `http://127.0.0.1:${recorder.address().port}/_portcullis/backchannel-logout`;
    });

    const { page, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.alice, gw.origin);
    assert.equal(docs.last().status(), 200);
    assert.equal((await pageFetch(page, '/app/api')).status, 200);

    await kc.admin('POST', `/users/${await kc.userId('alice')}/logout`);
    await eventually('Keycloak\'s logout token reached the gateway', () => seen.length > 0);
    assert.equal(seen[0].status, 200, `the gateway took Keycloak's logout token${tail(gw)}`);
    const token = new URLSearchParams(seen[0].body).get('logout_token');
    const claims = jwtClaims(token);
    const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url'));
    t.diagnostic(`logout token header ${JSON.stringify(header)} claims ${JSON.stringify(claims)}`);
    assert.ok(claims.sid, 'backchannel logout session required: the token names the sid');
    assert.ok(claims.events?.['http://schemas.openid.net/event/backchannel-logout'] !== undefined);
    await eventually('the gateway session ended', async () => (await pageFetch(page, '/app/api')).status === 401);
  });

  test('refresh with Keycloak\'s rotating refresh tokens under concurrent requests never fails one', async (t) => {
    // 10 s access tokens for the gateway's client; the realm revokes refresh tokens at use.
    await kc.updateClient('portcullis', (c) => { c.attributes['access.token.lifespan'] = '10'; });
    t.after(() => kc.updateClient('portcullis', (c) => { delete c.attributes['access.token.lifespan']; }));
    const gw = await gateway(t, { session: 'refresh = true', extra: '[headers]\naccess_token = "X-Auth-Request-Access-Token"' });
    const { page, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.alice, gw.origin);
    let token = jwtClaims(echoed(await docs.last().json(), 'x-auth-request-access-token')[0]);
    assert.ok(token.exp - token.iat <= 10, `a 10 s token: ${token.exp - token.iat}`);
    const jtis = new Set([token.jti]);

    for (const round of [1, 2]) {
      // Past half the token's life, the next requests refresh it: 12 at once.
      const due = (token.iat + (token.exp - token.iat) / 2 + 1) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      const answers = await page.evaluate(async () => Promise.all(Array.from({ length: 12 }, async (_, i) => {
        const r = await fetch(`/app/api/${i}`, { headers: { accept: 'application/json' } });
        return { status: r.status, body: await r.text() };
      })));
      assert.deepEqual(answers.map((a) => a.status), Array(12).fill(200), `round ${round}: ${answers.map((a) => a.body.slice(0, 120)).join('\n')}${tail(gw)}`);
      const tokens = answers.map((a) => jwtClaims(echoed(JSON.parse(a.body), 'x-auth-request-access-token')[0]));
      const newest = tokens.reduce((a, b) => (b.iat >= a.iat ? b : a));
      assert.ok(!jtis.has(newest.jti), `round ${round}: a new access token came from the refresh`);
      jtis.add(newest.jti);
      token = newest;
    }
    // The page itself still works after two refreshes (the rotated refresh token was kept).
    const again = await page.reload();
    assert.equal(again.status(), 200, tail(gw));
  });

  test('a session whose Keycloak session ended elsewhere ends at its next refresh: one new login, no loop', async (t) => {
    await kc.updateClient('portcullis', (c) => { c.attributes['access.token.lifespan'] = '10'; });
    t.after(() => kc.updateClient('portcullis', (c) => { delete c.attributes['access.token.lifespan']; }));
    const gw = await gateway(t, { session: 'refresh = true', extra: '[headers]\naccess_token = "X-Auth-Request-Access-Token"' });
    // No back-channel logout this time: the gateway can only learn it when it refreshes.
    await kc.updateClient('portcullis', (c) => { c.attributes['backchannel.logout.url'] = ''; });
    const { page, log, docs } = await freshPage(t);
    await page.goto(gw.url('/app/'));
    await waitForKeycloakForm(page);
    await signIn(page, USERS.alice, gw.origin);
    const token = jwtClaims(echoed(await docs.last().json(), 'x-auth-request-access-token')[0]);

    await kc.admin('POST', `/users/${await kc.userId('alice')}/logout`);
    const due = (token.iat + (token.exp - token.iat) / 2 + 1) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    // Keycloak refuses the refresh (invalid_grant, "Session not active"): an API call gets
    // 401 and the cookies are cleared...
    const api = await pageFetch(page, '/app/api');
    assert.equal(api.status, 401, `${api.body}${tail(gw)}`);
    t.diagnostic(gw.log().split('\n').find((l) => l.includes('token endpoint refused')) ?? 'no refusal logged');
    // ...and a page load logs in once more, at Keycloak's form (its session is gone too).
    await page.goto(gw.url('/app/again?x=1'));
    await waitForKeycloakForm(page);
    assert.equal(authRequests(log).length, 2, 'one new trip to Keycloak, no loop');
    await signIn(page, USERS.alice, gw.origin);
    assert.equal(page.url(), gw.url('/app/again?x=1'));
    assert.equal(docs.last().status(), 200, tail(gw));
  });
});

describe('browser login at Keycloak, implicit flow (the SPA client)', () => {
  test('an implicit form_post login with the public minio-console client lands on the URL first asked for', async (t) => {
    const gw = await startGatewayWith(() => `
[provider]
issuer = "${kc.issuer}"
client_id = "minio-console"
login_flow = "implicit"

[session]
secrets = ["keycloak-e2e-session-secret-0123456789abcdef"]

${ROUTES.replaceAll('{echo}', echo.url)}
`);
    t.after(() => gw.stop());
    await kc.useGateway(gw.origin, { backchannel: false });
    const { page, log, docs } = await freshPage(t);
    const start = gw.url('/app/console?bucket=b1');
    await page.goto(start);
    await waitForKeycloakForm(page);
    const [auth] = authRequests(log).map((r) => new URL(r.url));
    assert.equal(auth.searchParams.get('client_id'), 'minio-console');
    assert.equal(auth.searchParams.get('response_type'), 'id_token token');
    assert.equal(auth.searchParams.get('response_mode'), 'form_post');
    await signIn(page, USERS.alice, gw.origin);
    const posted = log.requests.filter((r) => r.method === 'POST' && r.url === gw.url('/_portcullis/callback'));
    assert.equal(posted.length, 1, 'Keycloak posted the tokens to the callback');
    const form = new URLSearchParams(posted[0].postData ?? '');
    t.diagnostic(`form_post fields: ${[...form.keys()].join(', ')}`);
    assert.ok(form.get('id_token') && form.get('access_token'));
    assert.equal(page.url(), start, tail(gw));
    assert.equal(docs.last().status(), 200, tail(gw));
    const seen = await docs.last().json();
    assert.deepEqual(echoed(seen, 'x-auth-request-user'), ['alice']);
    const roles = echoed(seen, 'x-auth-request-roles')[0]?.split(',') ?? [];
    assert.ok(roles.includes('minio-user'), `roles: ${roles}`);
  });
});

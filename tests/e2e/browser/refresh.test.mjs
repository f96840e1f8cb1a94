// Session refresh in a real chromium: access tokens that live 6 s, `[session] refresh =
// true`, and a provider that rotates refresh tokens. The gateway passes the access token to
// the echo backend (`[headers] access_token`), so the test sees which token each request
// carried. The only test here that must wait for time to pass (twice past a token's expiry).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  USERS, documents, echoed, jwtClaims, launchBrowser, newContext, startStack, submitLogin,
  toProvider, waitForLoginForm,
} from './harness.mjs';

const ACCESS_TTL = 6;
const TOKEN_HEADER = 'x-auth-request-access-token';

let stack;
let browser;

before(async () => {
  stack = await startStack({
    providerArgs: ['--access-ttl', String(ACCESS_TTL), '--rotate-refresh-tokens'],
    session: 'refresh = true',
    extra: '[headers]\naccess_token = "X-Auth-Request-Access-Token"',
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stack?.stop();
});

const why = (extra = '') => `${extra}\n--- gateway log (tail) ---\n${stack.gw.log().split('\n').slice(-25).join('\n')}`;

/** The access token the backend received in `echo`, decoded. */
function tokenOf(echo) {
  const [token] = echoed(echo, TOKEN_HEADER);
  assert.ok(token, `the backend got no ${TOKEN_HEADER}`);
  return jwtClaims(token);
}

test('an expired access token is refreshed, not sent back to the provider', async (t) => {
  const { gw, op } = stack;
  const { context, log } = await newContext(browser);
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  const docs = documents(page);
  const start = gw.url('/app/page?x=1');
  await page.goto(start);
  await waitForLoginForm(page);
  await submitLogin(page, USERS.alice, gw.origin);
  assert.equal(page.url(), start);
  assert.equal(docs.last().status(), 200, why());
  let token = tokenOf(await docs.last().json());
  assert.ok(token.exp - token.iat <= ACCESS_TTL, `a ${ACCESS_TTL}s token: ${JSON.stringify(token)}`);

  // Twice: the second time the session must hold the refresh token the provider rotated in.
  for (const round of [1, 2]) {
    // The session cookie must outlive the access token, or the browser drops it before the
    // gateway ever gets a chance to refresh (expires -1: a browser-session cookie). Checked
    // after the reload, and told in its failure, so that both symptoms show.
    const cookies = (await context.cookies(gw.origin))
      .filter((c) => /^_portcullis(_\d+)?$/.test(c.name));
    const shortLived = cookies.filter((c) => c.expires !== -1 && c.expires <= token.exp + 60)
      .map((c) => `cookie ${c.name} expires at ${Math.round(c.expires)}, with the access token (${token.exp})`);

    // Wait until the access token the backend last saw has expired (plus a margin).
    const waitMs = (token.exp + 2) * 1000 - Date.now();
    assert.ok(waitMs < (ACCESS_TTL + 5) * 1000, `token exp ${token.exp} is not ~${ACCESS_TTL}s away`);
    await new Promise((r) => setTimeout(r, Math.max(0, waitMs)));

    const since = log.requests.length;
    const again = await page.reload();
    assert.deepEqual(toProvider(log, op, since).map((r) => r.url), [],
      why(`round ${round}: the browser went back to the provider instead of a refresh; ${shortLived.join('; ')}`));
    assert.equal(page.url(), start, why(`round ${round}`));
    assert.equal(again.status(), 200, why(`round ${round}: ${await again.text()}`));
    const echo = await again.json();
    assert.deepEqual(echoed(echo, 'x-auth-request-user'), ['alice']);
    const fresh = tokenOf(echo);
    const now = Date.now() / 1000;
    assert.ok(fresh.exp > now, `round ${round}: the backend got an expired token (exp ${fresh.exp}, now ${now})`);
    assert.notEqual(fresh.jti, token.jti, `round ${round}: a new access token`);
    assert.ok(cookies.length > 0, 'a session cookie');
    assert.deepEqual(shortLived, [], `round ${round}`);
    token = fresh;
  }
});

// Browser login (authorization code + PKCE) in a real chromium, against the real provider
// and the gateway binary. One provider, echo backend and gateway for the whole file; a new
// browser context (own cookie jar) per test.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  USERS, documents, echoed, isLoginForm, launchBrowser, newContext, startStack, submitLogin,
  toProvider, waitForLoginForm,
} from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stack?.stop();
});

/** A fresh context and page; closed after the test. */
async function freshPage(t) {
  const { context, log } = await newContext(browser);
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  return { context, page, log };
}

const why = (extra = '') => `${extra}\n--- gateway log (tail) ---\n${stack.gw.log().split('\n').slice(-25).join('\n')}`;

describe('browser login, code flow', () => {
  test('a login does not lose the URL first asked for, nor the identity', async (t) => {
    const { gw, op } = stack;
    const { page, log } = await freshPage(t);
    const docs = documents(page);
    const start = gw.url('/app/page?x=1');
    await page.goto(start);
    await waitForLoginForm(page);
    assert.equal(new URL(page.url()).origin, op.origin, 'the login form is the provider\'s');
    await submitLogin(page, USERS.alice, gw.origin);

    assert.equal(page.url(), start, why('lands on exactly the URL first asked for'));
    const shown = docs.last();
    assert.equal(shown.status(), 200, why(await shown.text()));
    const echo = await shown.json();
    assert.equal(echo.uri, '/app/page?x=1');
    assert.deepEqual(echoed(echo, 'x-auth-request-user'), ['alice']);
    const roles = echoed(echo, 'x-auth-request-roles')[0]?.split(',') ?? [];
    assert.ok(roles.includes('minio-user'), `roles: ${roles}`);
    assert.ok(echoed(echo, 'cookie').every((c) => !c.includes('_portcullis')),
      'the session cookie never reaches the backend');
    assert.deepEqual(log.offLoopback, []);
  });

  test('a user without the role gets 403, not a login loop', async (t) => {
    const { gw, op } = stack;
    const { page, log } = await freshPage(t);
    const docs = documents(page);
    await page.goto(gw.url('/app/'));
    await waitForLoginForm(page);
    await submitLogin(page, USERS.bob, gw.origin);

    assert.equal(page.url(), gw.url('/app/'));
    assert.equal(docs.last().status(), 403, why(await docs.last().text()));
    // Give a loop a chance to show itself, then count: one authorization request only.
    await page.waitForLoadState('networkidle');
    // Authorization requests, not the provider's own resume step (.../auth/<uid>).
    const authRequests = toProvider(log, op)
      .filter((r) => new URL(r.url).pathname.endsWith('/protocol/openid-connect/auth'));
    assert.equal(authRequests.length, 1, why(JSON.stringify(authRequests, null, 1)));
    // Reloading is still a plain 403, without a trip to the provider.
    const before = log.requests.length;
    const again = await page.reload();
    assert.equal(again.status(), 403);
    assert.deepEqual(toProvider(log, op, before), []);
  });

  test('logout forces a new login at the provider', async (t) => {
    const { gw, op } = stack;
    const { page } = await freshPage(t);
    const docs = documents(page);
    await page.goto(gw.url('/app/'));
    await waitForLoginForm(page);
    await submitLogin(page, USERS.alice, gw.origin);
    assert.equal(docs.last().status(), 200, why());

    // The gateway's logout sends the browser to the provider's end-session page, which
    // submits itself and comes back to /app/, which (no session) goes to log in again.
    await page.goto(gw.url('/_portcullis/logout?rd=/app/'));
    await waitForLoginForm(page);
    assert.equal(new URL(page.url()).origin, op.origin);
    assert.ok(isLoginForm(page.url()), page.url());
    // The provider's session is gone too: it asks for credentials, and a new login works.
    await submitLogin(page, USERS.alice, gw.origin);
    assert.equal(page.url(), gw.url('/app/'));
    assert.equal(docs.last().status(), 200, why());
  });

  test('two tabs logging in at once do not spoil each other\'s login', async (t) => {
    const { gw } = stack;
    const { context } = await freshPage(t);
    const one = await context.newPage();
    const two = await context.newPage();
    const docsOne = documents(one);
    const docsTwo = documents(two);
    // Both start before either finishes.
    await Promise.all([one.goto(gw.url('/app/one?tab=1')), two.goto(gw.url('/app/two?tab=2'))]);
    await Promise.all([waitForLoginForm(one), waitForLoginForm(two)]);
    // The second tab finishes first, then the first.
    await submitLogin(two, USERS.alice, gw.origin);
    await submitLogin(one, USERS.alice, gw.origin);

    assert.equal(two.url(), gw.url('/app/two?tab=2'), why());
    assert.equal(one.url(), gw.url('/app/one?tab=1'), why());
    for (const [docs, uri] of [[docsOne, '/app/one?tab=1'], [docsTwo, '/app/two?tab=2']]) {
      assert.equal(docs.last().status(), 200, why(uri));
      const echo = await docs.last().json();
      assert.equal(echo.uri, uri);
      assert.deepEqual(echoed(echo, 'x-auth-request-user'), ['alice']);
    }
  });

  test('an SPA request without a session gets 401 JSON, never a redirect', async (t) => {
    const { gw, op } = stack;
    const { page, log } = await freshPage(t);
    const loaded = await page.goto(gw.url('/pub/index.html'));
    assert.equal(loaded.status(), 200);
    const before = log.requests.length;
    const answer = await page.evaluate(async () => {
      const r = await fetch('/app/api', { headers: { accept: 'application/json' } });
      return {
        status: r.status, redirected: r.redirected, url: r.url,
        type: r.headers.get('content-type'), body: await r.text(),
      };
    });
    assert.equal(answer.status, 401, JSON.stringify(answer));
    assert.equal(answer.redirected, false);
    assert.equal(answer.url, gw.url('/app/api'));
    assert.match(answer.type ?? '', /application\/json/);
    const body = JSON.parse(answer.body);
    assert.equal(typeof body.error, 'string', answer.body);
    // The same with fetch's defaults (Accept: */*).
    const plain = await page.evaluate(async () => {
      const r = await fetch('/app/api/list');
      return { status: r.status, redirected: r.redirected };
    });
    assert.deepEqual(plain, { status: 401, redirected: false });
    assert.deepEqual(toProvider(log, op, before), [], 'no request went to the provider');
    assert.ok(log.responses.slice(before).every((r) => r.location === null), 'no redirect at all');
  });

  // What a gateway must never do with `rd`: send the browser off its own origin.
  const EVIL_RD = [
    '//evil.example',
    '/\\evil.example',
    '/%09/evil.example',
    'https://evil.example',
    'javascript:alert(1)',
    '/%2F%2Fevil.example',
    '\\/evil.example',
    '/x%0d%0aLocation:%20http://evil',
  ];

  test('the open-redirect corpus never leads the browser off the gateway', async (t) => {
    const { gw, op } = stack;
    const allowed = new Set([gw.origin, op.origin]);
    const { page, log } = await freshPage(t);
    const docs = documents(page);
    const outcomes = [];
    // Each rd is sent twice: as written (what an attacker pastes in a link) and encoded
    // (so the gateway decodes exactly the string above).
    const cases = EVIL_RD.flatMap((rd) => [
      { rd, query: rd, how: 'raw' },
      { rd, query: encodeURIComponent(rd), how: 'encoded' },
    ]);
    for (const { rd, query, how } of cases) {
      const since = log.responses.length;
      const start = `${gw.origin}/_portcullis/login?rd=${query}`;
      await page.goto(start).catch((e) => outcomes.push(`${how} ${rd}: goto failed: ${e.message}`));
      if (isLoginForm(page.url())) {
        // The gateway accepted it as a local path: log in all the way through.
        await submitLogin(page, USERS.alice, gw.origin).catch((e) => {
          outcomes.push(`${how} ${rd}: login did not come back to the gateway: ${e.message} (at ${page.url()})`);
        });
      }
      await page.waitForLoadState('load');
      const here = new URL(page.url());
      if (here.origin !== gw.origin) outcomes.push(`${how} ${rd}: ended on ${page.url()}`);
      for (const r of log.responses.slice(since)) {
        if (r.location !== null && !allowed.has(safeOrigin(r.location))) {
          outcomes.push(`${how} ${rd}: ${r.status} ${r.url} -> Location ${r.rawLocation}`);
        }
      }
      t.diagnostic(`${how} ${JSON.stringify(rd)}: ${docs.last()?.status()} at ${page.url()}`);
    }
    // Control: a good rd does go through the whole login and comes back to it.
    await page.goto(`${gw.origin}/_portcullis/login?rd=${encodeURIComponent('/app/here?q=1')}`);
    if (isLoginForm(page.url())) await submitLogin(page, USERS.alice, gw.origin);
    assert.equal(page.url(), gw.url('/app/here?q=1'), why());
    assert.equal(docs.last().status(), 200);
    assert.deepEqual(log.offLoopback, [], 'the browser never tried to leave loopback');
    assert.deepEqual(log.dialogs, [], 'no script ran from an rd');
    assert.deepEqual(outcomes, [], why(outcomes.join('\n')));
  });
});

function safeOrigin(u) {
  try {
    const url = new URL(u);
    return url.origin === 'null' ? u : url.origin;
  } catch {
    return u;
  }
}

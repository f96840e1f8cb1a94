// Browser login with the implicit flow (`[provider] login_flow = "implicit"`: response_type
// `id_token token`, response_mode form_post to POST /_portcullis/callback), in a real
// chromium against the real provider and the gateway binary.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  USERS, documents, echoed, launchBrowser, newContext, startStack, submitLogin, toProvider,
  waitForLoginForm,
} from './harness.mjs';

let stack;
let browser;

before(async () => {
  stack = await startStack({ provider: 'login_flow = "implicit"' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stack?.stop();
});

const why = (extra = '') => `${extra}\n--- gateway log (tail) ---\n${stack.gw.log().split('\n').slice(-25).join('\n')}`;

test('an implicit-flow login does not lose the URL first asked for, nor the identity', async (t) => {
  const { gw, op } = stack;
  const { context, log } = await newContext(browser);
  t.after(() => context.close().catch(() => {}));
  const page = await context.newPage();
  const docs = documents(page);
  const start = gw.url('/app/page?x=1');
  await page.goto(start);
  await waitForLoginForm(page);
  await submitLogin(page, USERS.alice, gw.origin);

  // It really was the implicit flow: the authorization request asked for `id_token token`
  // by form_post, and the provider's answer came back as a POST to the callback.
  const auth = toProvider(log, op)
    .map((r) => new URL(r.url))
    .find((u) => u.pathname.endsWith('/protocol/openid-connect/auth'));
  assert.ok(auth, why('no authorization request'));
  assert.equal(auth.searchParams.get('response_type'), 'id_token token',
    why(`the gateway asked for response_type=${auth.searchParams.get('response_type')}: ${auth.href}`));
  assert.equal(auth.searchParams.get('response_mode'), 'form_post', why(auth.href));
  assert.ok(auth.searchParams.get('nonce'), 'the implicit flow needs a nonce');
  const posted = log.requests.filter((r) => r.method === 'POST' && r.url === gw.url('/_portcullis/callback'));
  assert.equal(posted.length, 1, why('one form_post to the callback'));
  const form = new URLSearchParams(posted[0].postData ?? '');
  assert.ok(form.get('id_token') && form.get('access_token') && form.get('state'),
    `form_post fields: ${[...form.keys()]}`);

  assert.equal(page.url(), start, why('lands on exactly the URL first asked for'));
  const shown = docs.last();
  assert.equal(shown.status(), 200, why(await shown.text()));
  const echo = await shown.json();
  assert.equal(echo.uri, '/app/page?x=1');
  assert.deepEqual(echoed(echo, 'x-auth-request-user'), ['alice']);
  const roles = echoed(echo, 'x-auth-request-roles')[0]?.split(',') ?? [];
  assert.ok(roles.includes('minio-user'), `roles: ${roles}`);
  assert.deepEqual(log.offLoopback, []);
});

// What every forward-auth recipe must hold, run against one real front proxy at a time:
// the proxy of deploy/forward-auth/<name>/, the gateway on deploy/forward-auth/gateway.toml,
// the real provider, `portcullis echo` as the backend and Debian's chromium.
//
// `todo` maps a test's name to the reason it cannot pass with this proxy yet; such a test
// still runs and reports, but does not fail the suite.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  USERS, echoed, launchBrowser, newContext, submitLogin, waitForLoginForm,
} from '../browser/harness.mjs';
import { request, serviceToken, startForwardAuthStack } from './stack.mjs';

const BILLING = ['billing-service', 'billing-secret-0123456789abcdef'];
const IDENTITY = ['user', 'email', 'groups', 'roles', 'subject', 'client', 'scopes']
  .map((k) => `x-auth-request-${k}`);
const PAGE_LOAD = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

/** An echo backend's answer, or a failure that says what came back instead. */
function echoOf(r, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.body.slice(0, 300)}`);
  const echo = r.json();
  assert.ok(Array.isArray(echo.headers), `${what}: not the echo backend's answer: ${r.body.slice(0, 300)}`);
  return echo;
}

/** True when `r` is the gateway's refusal (JSON error), not something the backend said. */
function isGatewayRefusal(r) {
  try {
    const v = JSON.parse(r.body);
    return typeof v.error === 'string' && !('headers' in v);
  } catch {
    return /<h1>\d{3} /.test(r.body);
  }
}

/** Header names the backend received, lower-case, with `_` read as `-` (as WSGI does). */
function identityLike(echo) {
  return echo.headers
    .map(([k, v]) => [k.toLowerCase().replaceAll('_', '-'), v])
    .filter(([k]) => k.startsWith('x-auth-request-'));
}

export function forwardAuthSuite(name, { todo = {} } = {}) {
  const named = (title) => (todo[title] ? { todo: todo[title] } : {});

  describe(`forward-auth behind ${name}`, () => {
    let s;
    let token;
    let browser;
    const why = (extra = '') => `${extra}\n--- ${name} (tail) ---\n${s.proxy.output().split('\n').slice(-15).join('\n')}`
      + `\n--- gateway (tail) ---\n${s.gateway.output().split('\n').slice(-15).join('\n')}`;

    before(async () => {
      s = await startForwardAuthStack(name);
      token = await serviceToken(s.op, ...BILLING, 'orders:read');
    });

    after(async () => {
      await browser?.close().catch(() => {});
      await s?.stop();
    });

    const bearer = (extra = {}) => ({ authorization: `Bearer ${token}`, ...extra });

    test('a service token reaches the backend with the identity headers', named('a service token reaches the backend with the identity headers'), async () => {
      const r = await request(s.proxy.url('/api/orders/42?page=2'), { headers: bearer() });
      const echo = echoOf(r, 'GET with a token');
      assert.equal(echo.uri, '/api/orders/42?page=2');
      assert.deepEqual(echoed(echo, 'x-auth-request-client'), ['billing-service']);
      assert.deepEqual(echoed(echo, 'x-auth-request-scopes'), ['orders:read']);
      assert.deepEqual(echoed(echo, 'x-auth-request-user'), ['service-account-billing-service']);
      assert.deepEqual(echoed(echo, 'x-auth-request-subject'), ['billing-service']);
      assert.deepEqual(echoed(echo, 'authorization'), [`Bearer ${token}`], 'the token is passed on unchanged');
    });

    test('no token is refused with 401 and never reaches the backend', named('no token is refused with 401 and never reaches the backend'), async () => {
      const r = await request(s.proxy.url('/api/orders/42'));
      assert.equal(r.status, 401, why(r.body));
      assert.ok(isGatewayRefusal(r), `the gateway's refusal, not the backend: ${r.body}`);
      assert.equal(r.headers['www-authenticate'], 'Bearer realm="portcullis"');
    });

    test('a missing scope is refused with 403 naming the scope', named('a missing scope is refused with 403 naming the scope'), async () => {
      const r = await request(s.proxy.url('/api/orders/42'), { method: 'DELETE', headers: bearer() });
      assert.equal(r.status, 403, why(r.body));
      assert.ok(isGatewayRefusal(r), r.body);
      assert.match(r.headers['www-authenticate'] ?? '', /error="insufficient_scope", scope="orders:admin"/);
    });

    // CVE-2026-40575 (oauth2-proxy): the auth service believed a client-sent X-Forwarded-Uri.
    test('a client-sent X-Forwarded-Uri cannot make a protected path public', named('a client-sent X-Forwarded-Uri cannot make a protected path public'), async () => {
      for (const forged of ['/public/', '/public/x', '/_portcullis/userinfo']) {
        const r = await request(s.proxy.url('/api/orders/42'), {
          headers: { 'X-Forwarded-Uri': forged, 'x-forwarded-uri': forged, 'X-Forwarded-Host': 'public.example' },
        });
        assert.equal(r.status, 401, why(`X-Forwarded-Uri: ${forged}: ${r.status} ${r.body}`));
        assert.ok(isGatewayRefusal(r), r.body);
      }
      // And the other way round: a public page does not pass a forged URI on.
      const echo = echoOf(await request(s.proxy.url('/public/page'), {
        headers: { 'X-Forwarded-Uri': '/api/orders/42', 'X-Forwarded-Method': 'DELETE' },
      }), 'public page');
      assert.equal(echo.uri, '/public/page');
      for (const h of ['x-forwarded-uri', 'x-forwarded-method']) {
        assert.ok(echoed(echo, h).every((v) => v !== '/api/orders/42' && v !== 'DELETE'),
          `the client's ${h} reached the backend: ${echoed(echo, h)}`);
      }
    });

    test('a client-sent X-Forwarded-Method cannot turn a DELETE into a GET', named('a client-sent X-Forwarded-Method cannot turn a DELETE into a GET'), async () => {
      const r = await request(s.proxy.url('/api/orders/42'), {
        method: 'DELETE', headers: bearer({ 'X-Forwarded-Method': 'GET' }),
      });
      assert.equal(r.status, 403, why(r.body));
      assert.ok(isGatewayRefusal(r), r.body);
    });

    test('dot segments are judged as the path they resolve to', named('dot segments are judged as the path they resolve to'), async () => {
      const r = await request(s.proxy.url('/'), { path: '/public/../api/orders/42' });
      assert.notEqual(r.status, 200, why(`/public/../api/orders/42 was let through: ${r.body}`));
      assert.ok(isGatewayRefusal(r) || r.status === 400, `${r.status} ${r.body}`);
    });

    // CVE-2025-64484 (oauth2-proxy): identity headers smuggled past the strip list in another
    // case or with underscores, which WSGI/PHP backends read as the real ones.
    test('client-sent identity headers never reach the backend, in any case or with underscores', named('client-sent identity headers never reach the backend, in any case or with underscores'), async () => {
      const forged = {
        'X-Auth-Request-User': 'admin',
        'x-auth-request-email': 'admin@example.com',
        'X-AUTH-REQUEST-GROUPS': '/admins',
        X_Auth_Request_Roles: 'admin',
        'X-Auth_Request-Client': 'admin-service',
        'X-Auth-Request-Access-Token': 'forged',
      };
      // With a valid service token: only the gateway's answer arrives. The service has no
      // email or groups, so those must be absent, not the client's.
      const withToken = echoOf(await request(s.proxy.url('/api/orders/42'), { headers: bearer(forged) }), 'token + forged identity');
      const got = identityLike(withToken);
      assert.deepEqual(got.filter(([k]) => k === 'x-auth-request-user'), [['x-auth-request-user', 'service-account-billing-service']],
        `user: ${JSON.stringify(got)}`);
      assert.deepEqual(got.filter(([k]) => k === 'x-auth-request-client'), [['x-auth-request-client', 'billing-service']],
        `client: ${JSON.stringify(got)}`);
      for (const k of ['x-auth-request-email', 'x-auth-request-groups', 'x-auth-request-access-token']) {
        assert.deepEqual(got.filter(([n]) => n === k), [], `${k} reached the backend: ${JSON.stringify(got)}`);
      }
      assert.ok(!got.some(([, v]) => ['admin', '/admins', 'admin@example.com', 'admin-service', 'forged'].includes(v)),
        `a forged value reached the backend: ${JSON.stringify(got)}`);
      assert.ok(withToken.headers.every(([k]) => !k.includes('_')), `an underscore header reached the backend: ${JSON.stringify(withToken.headers)}`);
      // On a public route too: nobody is authenticated, so no identity at all.
      const pub = echoOf(await request(s.proxy.url('/public/page'), { headers: forged }), 'public + forged identity');
      assert.deepEqual(identityLike(pub), [], `identity on a public route: ${JSON.stringify(pub.headers)}`);
    });

    test('a page load without a session is sent to log in with its URI, never to the backend', named('a page load without a session is sent to log in with its URI, never to the backend'), async () => {
      const uri = '/app/reports/q3?year=2026&tag=a%2Fb&q=x+y';
      const r = await request(s.proxy.url(uri), { headers: PAGE_LOAD });
      assert.equal(r.status, 302, why(`${r.status} ${r.body.slice(0, 300)}`));
      const to = new URL(r.headers.location, s.proxy.origin);
      assert.equal(to.origin, s.proxy.origin, `redirected off the proxy: ${r.headers.location}`);
      assert.equal(to.pathname, '/_portcullis/login');
      assert.equal(to.searchParams.get('rd'), uri, `rd=${to.searchParams.get('rd')}`);
    });

    test('an API call without a session gets 401, not a redirect', named('an API call without a session gets 401, not a redirect'), async () => {
      const r = await request(s.proxy.url('/app/data.json'), { headers: { accept: 'application/json', 'sec-fetch-mode': 'cors' } });
      assert.equal(r.status, 401, why(r.body));
      assert.ok(isGatewayRefusal(r), r.body);
      const post = await request(s.proxy.url('/app/form'), { method: 'POST', headers: PAGE_LOAD });
      assert.equal(post.status, 401, why(`a POST is no page load: ${post.status} ${post.body.slice(0, 200)}`));
    });

    test('a page load on a bearer route gets 401, not a login loop', named('a page load on a bearer route gets 401, not a login loop'), async () => {
      const r = await request(s.proxy.url('/api/orders/42'), { headers: PAGE_LOAD });
      assert.equal(r.status, 401, why(`${r.status} ${r.headers.location ?? ''}`));
      assert.ok(isGatewayRefusal(r), r.body);
    });

    test('a route the gateway does not know is a 404, never a pass-through', named('a route the gateway does not know is a 404, never a pass-through'), async () => {
      const r = await request(s.proxy.url('/elsewhere/page'), { headers: bearer() });
      assert.equal(r.status, 404, why(`${r.status} ${r.body.slice(0, 200)}`));
      assert.ok(isGatewayRefusal(r), r.body);
    });

    test('a Chromium login through the proxy lands back on the original URL with the identity', named('a Chromium login through the proxy lands back on the original URL with the identity'), async (t) => {
      browser ??= await launchBrowser();
      const { context, log } = await newContext(browser);
      t.after(() => context.close().catch(() => {}));
      const page = await context.newPage();
      const start = s.proxy.url('/app/deep/page?x=1&y=two%20words');
      await page.goto(start);
      await waitForLoginForm(page);
      assert.equal(new URL(page.url()).origin, s.op.origin, 'the login form is the provider\'s');
      await submitLogin(page, USERS.alice, s.proxy.origin);
      assert.equal(page.url(), start, why('lands on exactly the URL first asked for'));

      // What the backend received for this session, asked by the page itself (a fetch:
      // same cookies, and JSON whatever the echo backend shows a browser).
      const echo = await page.evaluate(async (u) => {
        const r = await fetch(u, { headers: { accept: 'application/json' } });
        return { status: r.status, body: await r.text() };
      }, start);
      assert.equal(echo.status, 200, why(echo.body));
      const seen = JSON.parse(echo.body);
      assert.equal(seen.uri, '/app/deep/page?x=1&y=two%20words');
      assert.deepEqual(echoed(seen, 'x-auth-request-user'), ['alice']);
      assert.deepEqual(echoed(seen, 'x-auth-request-email'), ['alice@example.com']);
      const roles = echoed(seen, 'x-auth-request-roles')[0]?.split(',') ?? [];
      assert.ok(roles.includes('minio-user'), `roles: ${roles}`);

      // The gateway's endpoints answer through the proxy, for the same session.
      const who = await page.evaluate(async () => (await fetch('/_portcullis/userinfo')).json());
      assert.equal(who.user, 'alice');
      assert.deepEqual(log.offLoopback, []);
    });

    test('a user without the role gets 403 through the proxy, not a login loop', named('a user without the role gets 403 through the proxy, not a login loop'), async (t) => {
      browser ??= await launchBrowser();
      const { context, log } = await newContext(browser);
      t.after(() => context.close().catch(() => {}));
      const page = await context.newPage();
      await page.goto(s.proxy.url('/app/'));
      await waitForLoginForm(page);
      await submitLogin(page, USERS.bob, s.proxy.origin);
      assert.equal(page.url(), s.proxy.url('/app/'));
      const again = await page.reload();
      assert.equal(again.status(), 403, why(await again.text()));
      const logins = log.requests.filter((r) => new URL(r.url).pathname === '/_portcullis/login');
      assert.equal(logins.length, 1, `sent to log in ${logins.length} times`);
    });

    test('a logout through the proxy ends the session', named('a logout through the proxy ends the session'), async (t) => {
      browser ??= await launchBrowser();
      const { context, log } = await newContext(browser);
      t.after(() => context.close().catch(() => {}));
      const page = await context.newPage();
      await page.goto(s.proxy.url('/app/'));
      await waitForLoginForm(page);
      await submitLogin(page, USERS.alice, s.proxy.origin);
      const copy = (await context.cookies(s.proxy.origin)).find((c) => c.name === '_portcullis');
      assert.ok(copy, 'a session cookie after the login');
      // Out through the provider's end-session endpoint and back to the proxy.
      await page.goto(s.proxy.url('/_portcullis/logout?rd=/public/bye'));
      await page.waitForURL(s.proxy.url('/public/bye'));
      const status = await page.evaluate(async () => (await fetch('/app/', { headers: { accept: 'application/json' } })).status);
      assert.equal(status, 401, 'the session is over');
      // A copy of the old cookie is worthless too.
      const replay = await request(s.proxy.url('/app/'), {
        headers: { accept: 'application/json', cookie: `${copy.name}=${copy.value}` },
      });
      assert.equal(replay.status, 401, `the old cookie still works: ${replay.body.slice(0, 200)}`);
      assert.deepEqual(log.offLoopback, []);
    });

    test('the session cookie never reaches the backend', named('the session cookie never reaches the backend'), async (t) => {
      browser ??= await launchBrowser();
      const { context } = await newContext(browser);
      t.after(() => context.close().catch(() => {}));
      const page = await context.newPage();
      await context.addCookies([{ name: 'theme', value: 'dark', url: s.proxy.origin }]);
      await page.goto(s.proxy.url('/app/'));
      await waitForLoginForm(page);
      await submitLogin(page, USERS.alice, s.proxy.origin);
      const body = await page.evaluate(async () => (await fetch('/app/cookies', { headers: { accept: 'application/json' } })).text());
      const names = echoed(JSON.parse(body), 'cookie')
        .flatMap((c) => c.split(';').map((kv) => kv.trim().split('=')[0]));
      assert.ok(names.every((n) => !/^_portcullis(_|$)/.test(n)), `the backend got the gateway's cookie: ${names}`);
      assert.ok(names.includes('theme'), `the backend's own cookie is kept: ${names}`);
    });

    // Last in this block: it stops the gateway.
    test('the gateway unreachable is a refusal, never a pass-through', named('the gateway unreachable is a refusal, never a pass-through'), async () => {
      await s.gateway.stop();
      for (const [what, url, headers] of [
        ['a token', '/api/orders/42', bearer()],
        ['a public page', '/public/page', {}],
        ['a page load', '/app/', PAGE_LOAD],
      ]) {
        const r = await request(s.proxy.url(url), { headers });
        assert.ok(r.status >= 500, why(`${what} with the gateway down: ${r.status} ${r.body.slice(0, 200)}`));
        assert.ok(!r.body.includes('"headers"'), `${what} reached the backend: ${r.body.slice(0, 200)}`);
      }
    });
  });

  // Short tokens (6 s): the gateway renews them on a request once half their life is gone,
  // and answers the renewed session in Set-Cookie of its 2xx. A proxy that drops it leaves
  // the browser on the old cookie: every request refreshes again, and with rotating refresh
  // tokens (as here) the next refresh is refused and the session ends.
  describe(`forward-auth behind ${name}, renewed sessions`, () => {
    let s;
    let browser;
    before(async () => {
      s = await startForwardAuthStack(name, { providerArgs: ['--access-ttl', '6', '--rotate-refresh-tokens'] });
      browser = await launchBrowser();
    });
    after(async () => {
      await browser?.close().catch(() => {});
      await s?.stop();
    });

    const title = 'a session the gateway renews reaches the browser through the proxy';
    test(title, named(title), async (t) => {
      const { context } = await newContext(browser);
      t.after(() => context.close().catch(() => {}));
      const page = await context.newPage();
      await page.goto(s.proxy.url('/app/'));
      await waitForLoginForm(page);
      await submitLogin(page, USERS.alice, s.proxy.origin);
      const session = async () => (await context.cookies(s.proxy.origin)).find((c) => c.name === '_portcullis')?.value;
      const first = await session();
      assert.ok(first, 'a session cookie after the login');
      // Poll (a request every 250 ms, at most 10 s: renewal is due after 3 s) until the
      // browser holds another cookie.
      const deadline = Date.now() + 10000;
      let last;
      while ((await session()) === first) {
        assert.ok(Date.now() < deadline, `the browser never got a renewed session; last answer: ${JSON.stringify(last)}`);
        last = await page.evaluate(async () => {
          const r = await fetch('/app/ping', { headers: { accept: 'application/json' } });
          return { status: r.status, body: (await r.text()).slice(0, 200) };
        });
        assert.equal(last.status, 200, `a request of the session was refused: ${last.body}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      // The renewed session is the one the gateway now knows.
      const after = await page.evaluate(async () => (await fetch('/_portcullis/userinfo')).json());
      assert.equal(after.user, 'alice');
    });
  });
}

// The Django example (deploy/examples/django) behind the real gateway, end to end: people
// log in through Chromium at the provider and become Django users with their groups and
// admin rights; services call the DRF API with client-credentials tokens; then the test
// looks in the Django database.
//
//   bash deploy/examples/django/setup.sh && cd tests/e2e && node --test django/
//
// Provider: the real Keycloak (tests/e2e/keycloak, installed by its install.sh) when
// tests/e2e/keycloak/keycloak.mjs exists, else the look-alike (tests/e2e/provider);
// DJANGO_E2E_PROVIDER=keycloak|lookalike picks one. Everything listens on 127.0.0.1; the
// shop runs on its own temporary SQLite database and is stopped at the end, even on failure.
// DJANGO_E2E_KEEP=1 keeps that directory (database, gateway.toml, both logs) and names it.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CLIENT_SECRET, USERS, documents, freePort, launchBrowser, newContext, spawnKept, spawnUntil,
  startGatewayFromConfig, startProvider, stopChild,
} from '../browser/harness.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '../../..');
const EXAMPLE = path.join(ROOT, 'deploy/examples/django');
const PYTHON = path.join(EXAMPLE, '.venv/bin/python');
const KEYCLOAK_MODULE = path.resolve(HERE, '../keycloak/keycloak.mjs');
const PROVIDER = process.env.DJANGO_E2E_PROVIDER
  ?? (fs.existsSync(KEYCLOAK_MODULE) ? 'keycloak' : 'lookalike');

const SERVICES = {
  billing: { id: 'billing-service', secret: 'billing-secret-0123456789abcdef', scope: 'orders:read orders:write' },
  shipping: { id: 'shipping-service', secret: 'shipping-secret-0123456789abcdef', scope: 'orders:read' },
};

// What each provider's realm gives alice and bob: Keycloak group paths, and roles the shop
// must turn into groups (others may come along: `user`, client roles, …).
const REALMS = {
  keycloak: {
    alice: { groups: ['/minio-users', '/staff/engineering'], roles: ['admin', 'minio-user'] },
    bob: { groups: ['/staff'], roles: [] },
  },
  lookalike: {
    alice: { groups: ['/minio-users', '/staff'], roles: ['admin', 'minio-user'] },
    bob: { groups: ['/staff'], roles: [] },
  },
};
const EXPECTED = REALMS[PROVIDER];

// ------------------------------------------------------------ processes

// Children are spawned, kept track of and stopped by harness.mjs (spawnKept, spawnUntil,
// stopChild): none outlives this process.

/** Runs a command to its end (bounded); resolves to its output, rejects on failure. */
async function runToEnd(cmd, args, opts, what, timeoutMs = 60000) {
  const child = spawnKept(cmd, args, opts);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const code = await new Promise((resolve) => child.once('close', (c, s) => resolve(c ?? s)));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${what} failed (${code}):\n${child.output()}`);
  return child.output();
}

// ------------------------------------------------------------ the shop

const djangoEnv = {};

/** Runs Python in the shop's Django (manage.py shell); `code` prints `REPORT <json>`. */
async function django(code) {
  const out = await runToEnd(PYTHON, ['manage.py', 'shell', '--no-imports', '-c', code],
    { cwd: EXAMPLE, env: { ...process.env, ...djangoEnv } }, 'manage.py shell');
  const line = out.split('\n').find((l) => l.startsWith('REPORT '));
  return line ? JSON.parse(line.slice(7)) : null;
}

// Before anyone logs in: bob as a stale administrator (he lost the role in Keycloak since),
// in a stale Keycloak group and a stale role group, and in a group made in Django.
const SEED = `
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth.models import Group, User
bob = User.objects.create(username="bob", is_staff=True, is_superuser=True)
bob.set_unusable_password(); bob.save()
bob.groups.add(*(Group.objects.get_or_create(name=n)[0] for n in ["/admins", "role:admin", "local-editors"]))
`;

const REPORT = `
import json
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from orders.models import Order
users = {
    u.username: {
        "email": u.email, "is_staff": u.is_staff, "is_superuser": u.is_superuser,
        "usable_password": u.has_usable_password(),
        "groups": sorted(u.groups.values_list("name", flat=True)),
        "subject": getattr(getattr(u, "remote_identity", None), "subject", None),
    }
    for u in User.objects.all()
}
orders = list(Order.objects.values("id", "item", "quantity", "client", "account"))
print("REPORT " + json.dumps({"users": users, "orders": orders,
                              "sessions": list(Session.objects.values_list("session_key", flat=True))}))
`;

// ------------------------------------------------------------ the stack

let op; // { issuer, stop() }
let shop; // { url, child }
let gw; // { origin, url(p), log(), stop() }
let browser;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-django-'));

/** The example's own gateway.toml with the test's addresses in place of its own. */
function exampleConfig({ port, adminPort, issuer, upstream }) {
  let text = fs.readFileSync(path.join(EXAMPLE, 'gateway.toml'), 'utf8');
  const replace = (from, to, count) => {
    const n = text.split(from).length - 1;
    assert.equal(n, count, `deploy/examples/django/gateway.toml should hold ${from} ${count} time(s)`);
    text = text.replaceAll(from, to);
  };
  replace('listen = ["127.0.0.1:8080"]', `listen = ["127.0.0.1:${port}"]`, 1);
  replace('public_url = "http://127.0.0.1:8080"', `public_url = "http://127.0.0.1:${port}"\nshutdown_grace = "1s"`, 1);
  replace('listen = "127.0.0.1:9901"', `listen = "127.0.0.1:${adminPort}"`, 1);
  replace('issuer = "http://127.0.0.1:8180/realms/internal"', `issuer = "${issuer}"`, 1);
  replace('upstream = "http://127.0.0.1:8000"', `upstream = "${upstream}"`, 2);
  return text;
}

async function startOp(origin) {
  if (PROVIDER === 'keycloak') {
    const { startKeycloak } = await import(KEYCLOAK_MODULE);
    return startKeycloak({ gatewayUrls: [origin] });
  }
  return startProvider();
}

function startGateway({ port, adminPort, issuer, upstream }) {
  return startGatewayFromConfig({
    config: exampleConfig({ port, adminPort, issuer, upstream }),
    dir: tmp,
    keepDir: true,
    admin: `http://127.0.0.1:${adminPort}`,
    origin: `http://127.0.0.1:${port}`,
    env: {
      PORTCULLIS_CLIENT_SECRET: CLIENT_SECRET,
      PORTCULLIS_SESSION_SECRET: crypto.randomBytes(32).toString('base64url'),
      PORTCULLIS_LOG: 'info',
    },
    timeoutMs: 30000,
  });
}

before(async () => {
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`bash deploy/examples/django/setup.sh\``);
  const [port, adminPort] = [await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${port}`;
  Object.assign(djangoEnv, {
    DJANGO_SECRET_KEY: crypto.randomBytes(33).toString('base64url'),
    DJANGO_DB: path.join(tmp, 'shop.sqlite3'),
    PORTCULLIS_PUBLIC_URL: origin,
  });
  // The provider (Keycloak takes a while) and the shop's database at the same time.
  const [provider] = await Promise.all([startOp(origin), django(SEED)]);
  op = provider;
  if (op.version) console.error(`Keycloak ${op.version} started in ${op.startedMs} ms`);
  const { child, match } = await spawnUntil(PYTHON,
    ['serve.py', '--listen', '127.0.0.1:0', '--threads', '4', '--access-log'], {
      cwd: EXAMPLE,
      env: { ...process.env, ...djangoEnv },
      ready: /^READY (\{.*\})$/m,
      what: 'the shop (serve.py)',
      timeoutMs: 20000,
    });
  const ready = JSON.parse(match[1]);
  shop = { url: ready.url, child, log: () => child.output() };
  gw = await startGateway({ port, adminPort, issuer: op.issuer, upstream: shop.url });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await gw?.stop();
  await stopChild(shop?.child, 3000);
  await op?.stop().catch(() => {});
  if (process.env.DJANGO_E2E_KEEP) {
    // For a look afterwards: the logs beside the database and the gateway's config (the
    // gateway writes its gateway.log there itself).
    if (shop) fs.writeFileSync(path.join(tmp, 'shop.log'), shop.log());
    console.error(`kept ${tmp}`);
  } else {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

const why = (extra = '') => `${extra}\n--- gateway (tail) ---\n${gw.log().split('\n').slice(-15).join('\n')}`
  + `\n--- shop (tail) ---\n${shop.log().split('\n').slice(-15).join('\n')}`;

// ------------------------------------------------------------ helpers

/** The client-credentials grant at the provider's token endpoint. */
async function serviceToken({ id, secret, scope }) {
  const r = await fetch(`${op.issuer}/protocol/openid-connect/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, `token for ${id}: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** Lines of the shop's access log ("shop: ADDR METHOD PATH -> STATUS user=… client=…"). */
const shopRequests = () => shop.log().split('\n').filter((l) => l.startsWith('shop: '));

/** A fresh browser context and page, closed after the test. */
async function freshPage(t) {
  const { context, log } = await newContext(browser);
  context.setDefaultTimeout(30000);
  context.setDefaultNavigationTimeout(30000);
  t.after(() => context.close().catch(() => {}));
  return { context, page: await context.newPage(), log };
}

/** On the provider's login form: signs `user` in and waits to be back at the gateway. */
async function signIn(page, user) {
  try {
    await page.locator('#username').waitFor();
  } catch (e) {
    const text = await page.locator('body').innerText().catch(() => '?');
    throw new Error(`no login form at ${page.url()}: ${text.slice(0, 500)}${why()}`, { cause: e });
  }
  assert.notEqual(new URL(page.url()).origin, gw.origin, 'the login form is the provider\'s');
  await page.fill('#username', user.username);
  await page.fill('#password', user.password);
  await Promise.all([
    page.waitForURL((u) => u.origin === gw.origin, { waitUntil: 'load' }),
    page.locator('#kc-login, #login').first().click(),
  ]);
}

/** A request straight to the shop, not through the gateway, from `localAddress`. */
function direct(pathname, { headers = {}, localAddress = '127.0.0.1' } = {}) {
  const { hostname, port } = new URL(shop.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: pathname, headers, localAddress }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const roleGroups = (roles) => roles.map((r) => `role:${r}`);
const keycloakGroups = (groups) => groups.filter((g) => g.startsWith('/'));

// ------------------------------------------------------------ services

describe(`the Django example behind the gateway (provider: ${PROVIDER})`, () => {
  let billingOrder;

  test('a service with orders:write creates an order recorded under its own client, whatever client it claims', async () => {
    const token = await serviceToken(SERVICES.billing);
    const r = await fetch(gw.url('/api/orders/'), {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'x-auth-request-client': 'shipping-service', // forged: the gateway replaces it
      },
      body: JSON.stringify({ item: 'widget', quantity: 2, client: 'shipping-service' }),
    });
    const body = await r.text();
    assert.equal(r.status, 201, why(body));
    billingOrder = JSON.parse(body);
    assert.equal(billingOrder.client, 'billing-service');
    // Keycloak's service-account user (preferred_username, from the client's `profile` scope;
    // without that scope the gateway falls back to `sub`, as [claims] user says).
    assert.equal(billingOrder.account, 'service-account-billing-service');
  });

  test('a service with only orders:read lists the orders', async () => {
    const token = await serviceToken(SERVICES.shipping);
    const r = await fetch(gw.url('/api/orders/'), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, why());
    assert.deepEqual((await r.json()).map((o) => o.id), [billingOrder.id]);
  });

  test('a POST without orders:write is refused by the gateway and never reaches Django', async () => {
    const token = await serviceToken(SERVICES.shipping);
    const before = shopRequests().length;
    const r = await fetch(gw.url('/api/orders/'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ item: 'gadget', quantity: 1 }),
    });
    assert.equal(r.status, 403, why(await r.text()));
    const challenge = r.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /error="insufficient_scope"/);
    assert.match(challenge, /scope="orders:write"/);
    assert.deepEqual(shopRequests().slice(before), [], 'the shop saw no request');
  });

  test('an API call without a token never reaches Django', async () => {
    const before = shopRequests().length;
    const r = await fetch(gw.url('/api/orders/'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-auth-request-client': 'billing-service' },
      body: JSON.stringify({ item: 'forged', quantity: 1 }),
    });
    assert.equal(r.status, 401);
    assert.deepEqual(shopRequests().slice(before), []);
  });

  // ---------------------------------------------------------- people

  test('alice logs in once and Django admin opens for her: changelist, change form, save', async (t) => {
    const { page, log } = await freshPage(t);
    const docs = documents(page);
    await page.goto(gw.url('/admin/'));
    await signIn(page, USERS.alice);
    assert.equal(page.url(), gw.url('/admin/'), why('back on the page first asked for'));
    assert.equal(docs.last().status(), 200, why());
    await page.getByRole('heading', { name: 'Site administration' }).waitFor();

    await page.locator('a[href="/admin/orders/order/"]').first().click();
    await page.waitForURL((u) => u.pathname === '/admin/orders/order/');
    const row = page.locator('#result_list tbody tr', { hasText: 'billing-service' });
    assert.equal(await row.count(), 1, 'the service\'s order is listed with its client');
    await row.locator('th a').click();
    await page.waitForURL((u) => u.pathname === `/admin/orders/order/${billingOrder.id}/change/`);
    await page.fill('input[name="quantity"]', '5');
    await Promise.all([page.waitForURL((u) => u.pathname === '/admin/orders/order/'), page.click('input[name="_save"]')]);
    await page.locator('.messagelist .success').waitFor();
    assert.match(await page.locator('.messagelist').innerText(), /was changed successfully/);
    assert.deepEqual(log.offLoopback, []);
  });

  test('alice\'s groups and admin rights are put back by her next request after they were changed in Django', async (t) => {
    const { page } = await freshPage(t);
    await page.goto(gw.url('/'));
    await signIn(page, USERS.alice);
    assert.equal(await page.locator('#is-superuser').innerText(), 'yes');
    await django(`
from django.contrib.auth.models import Group, User
alice = User.objects.get(username="alice")
alice.is_staff = alice.is_superuser = False
alice.save()
alice.groups.add(Group.objects.get_or_create(name="/former-team")[0])
alice.groups.remove(Group.objects.get(name="role:admin"))
`);
    await page.reload();
    assert.equal(await page.locator('#is-superuser').innerText(), 'yes', why());
    const groups = (await page.locator('#groups').innerText()).split(', ');
    assert.ok(!groups.includes('/former-team'), `groups: ${groups}`);
    assert.ok(groups.includes('role:admin'), `groups: ${groups}`);
  });

  test('bob logs in, but Django admin answers 403 — no password form, no loop, no forged header', async (t) => {
    const { context, page } = await freshPage(t);
    // What a browser (or a page script) claims is replaced by the gateway.
    await context.setExtraHTTPHeaders({ 'X-Auth-Request-User': 'alice', 'X-Auth-Request-Roles': 'admin' });
    const docs = documents(page);
    await page.goto(gw.url('/'));
    await signIn(page, USERS.bob);
    assert.equal(await page.locator('#username').innerText(), 'bob');
    assert.equal(await page.locator('#is-staff').innerText(), 'no');
    await page.goto(gw.url('/admin/'));
    assert.equal(docs.last().status(), 403, why());
    await page.locator('#admin-forbidden').waitFor();
    assert.equal(await page.locator('input[type="password"]').count(), 0);
  });

  test('a Django session cookie without the gateway signs nobody in, and ends that session', async (t) => {
    const { context, page } = await freshPage(t);
    await page.goto(gw.url('/'));
    await signIn(page, USERS.alice);
    const cookie = (await context.cookies(gw.origin)).find((c) => c.name === 'shop_sessionid');
    assert.ok(cookie, 'the shop set its session cookie');
    const r = await direct('/', { headers: { cookie: `shop_sessionid=${cookie.value}` } });
    assert.equal(r.status, 403);
    assert.match(r.body, /No identity from the gateway/);
    const { sessions } = await django(REPORT);
    assert.ok(!sessions.includes(cookie.value), 'that Django session is gone');
    // Through the gateway alice is still signed in: the shop makes her a new Django session.
    await page.reload();
    assert.equal(await page.locator('#username').innerText(), 'alice', why());
  });

  test('identity headers from an address other than the gateway\'s are refused', async () => {
    const forged = {
      'x-auth-request-user': 'mallory', 'x-auth-request-roles': 'admin', host: '127.0.0.1',
    };
    const r = await direct('/admin/', { headers: forged, localAddress: '127.0.0.2' });
    assert.equal(r.status, 403);
    assert.match(r.body, /Only the gateway may call this app/);
  });

  test('signing out of the shop ends the gateway session and the provider\'s', async (t) => {
    const { page } = await freshPage(t);
    await page.goto(gw.url('/'));
    await signIn(page, USERS.bob);
    await Promise.all([
      page.waitForURL((u) => u.origin !== gw.origin, { waitUntil: 'load' }),
      page.click('#logout'),
    ]);
    // Back at the provider's login form: neither the gateway nor the provider knew bob any more.
    await page.locator('#username').waitFor();
    assert.notEqual(new URL(page.url()).origin, gw.origin, why(page.url()));
  });

  // ---------------------------------------------------------- the database

  test('the Django database holds what the gateway said: users, groups, rights, orders by client', async (t) => {
    const { users, orders } = await django(REPORT);
    t.diagnostic(`users: ${JSON.stringify(users)}`);
    assert.deepEqual(Object.keys(users).sort(), ['alice', 'bob'], 'no user for services, none for mallory');

    const { alice, bob } = users;
    assert.equal(alice.email, 'alice@example.com');
    assert.ok(alice.is_staff && alice.is_superuser, JSON.stringify(alice));
    assert.equal(alice.usable_password, false);
    assert.ok(alice.subject, 'her Keycloak subject is pinned');
    assert.deepEqual(keycloakGroups(alice.groups), EXPECTED.alice.groups);
    for (const g of roleGroups(EXPECTED.alice.roles)) assert.ok(alice.groups.includes(g), `${g} in ${alice.groups}`);

    assert.equal(bob.email, 'bob@example.com');
    assert.ok(!bob.is_staff && !bob.is_superuser, `bob lost his stale admin rights: ${JSON.stringify(bob)}`);
    assert.deepEqual(keycloakGroups(bob.groups), EXPECTED.bob.groups, 'the stale /admins group is gone');
    assert.ok(!bob.groups.includes('role:admin'), `${bob.groups}`);
    assert.ok(bob.groups.includes('local-editors'), 'a group made in Django stays');

    assert.deepEqual(orders, [{
      id: billingOrder.id, item: 'widget', quantity: 5, client: 'billing-service', account: billingOrder.account,
    }], 'one order, by billing-service, edited in Django admin; nothing from shipping-service');
  });
});

"""The app's side of the gateway contract, without the gateway: headers in, users out.

    DJANGO_SECRET_KEY=... .venv/bin/python manage.py test

Each test sends the headers Portcullis would send (the Django test client connects from
127.0.0.1, inside GATEWAY_NETWORKS) and looks at what Django made of them. The real
gateway, Keycloak and browser are in tests/e2e/django/.
"""

import json
import logging

from django.contrib.auth.models import Group, User
from django.test import TestCase

from orders.models import Order

ALICE = {
    "X-Auth-Request-User": "alice",
    "X-Auth-Request-Email": "alice@example.com",
    "X-Auth-Request-Subject": "6a1f3c2e-0000-4000-8000-00000000a11c",
    "X-Auth-Request-Groups": "/minio-users,/staff/engineering",
    "X-Auth-Request-Roles": "admin,default-roles-internal,minio-user,offline_access,uma_authorization",
}
BOB = {
    "X-Auth-Request-User": "bob",
    "X-Auth-Request-Email": "bob@example.com",
    "X-Auth-Request-Subject": "6a1f3c2e-0000-4000-8000-000000000b0b",
    "X-Auth-Request-Groups": "/staff",
    "X-Auth-Request-Roles": "default-roles-internal,offline_access",
}
BILLING = {
    "X-Auth-Request-User": "service-account-billing-service",
    "X-Auth-Request-Client": "billing-service",
    "X-Auth-Request-Scopes": "email,orders:read,orders:write,profile",
}


def setUpModule():
    # The sync's INFO lines (user created, groups joined) would drown the test report.
    logging.getLogger("gateway_auth").setLevel(logging.WARNING)


def groups_of(username):
    return sorted(User.objects.get(username=username).groups.values_list("name", flat=True))


class PeopleFromHeaders(TestCase):
    def test_first_request_creates_the_user_with_email_groups_and_admin_rights(self):
        r = self.client.get("/", headers=ALICE)
        self.assertEqual(r.status_code, 200)
        alice = User.objects.get(username="alice")
        self.assertEqual(alice.email, "alice@example.com")
        self.assertTrue(alice.is_staff and alice.is_superuser)
        self.assertFalse(alice.has_usable_password(), "no password login, ever")
        self.assertEqual(groups_of("alice"), ["/minio-users", "/staff/engineering", "role:admin", "role:minio-user"])

    def test_roles_taken_away_in_keycloak_leave_a_signed_in_user_at_the_next_request(self):
        self.client.get("/", headers=ALICE)  # signed in, Django session set
        demoted = {**ALICE, "X-Auth-Request-Roles": "minio-user", "X-Auth-Request-Groups": "/minio-users"}
        r = self.client.get("/", headers=demoted)
        self.assertEqual(r.status_code, 200)
        alice = User.objects.get(username="alice")
        self.assertFalse(alice.is_staff or alice.is_superuser)
        self.assertEqual(groups_of("alice"), ["/minio-users", "role:minio-user"])
        self.assertEqual(self.client.get("/admin/", headers=demoted).status_code, 302)

    def test_groups_made_in_django_survive_the_sync(self):
        self.client.get("/", headers=BOB)
        bob = User.objects.get(username="bob")
        bob.groups.add(Group.objects.create(name="local-editors"), Group.objects.create(name="/former-team"))
        self.client.get("/", headers=BOB)
        self.assertEqual(groups_of("bob"), ["/staff", "local-editors"])

    def test_everyday_keycloak_roles_make_no_django_groups(self):
        self.client.get("/", headers=BOB)
        self.assertFalse(Group.objects.filter(name__in=["role:offline_access", "role:default-roles-internal"]).exists())

    def test_a_bare_group_name_is_not_taken_for_a_keycloak_group(self):
        with self.assertLogs("gateway_auth", "WARNING"):
            self.client.get("/", headers={**BOB, "X-Auth-Request-Groups": "/staff,local-editors"})
        self.assertEqual(groups_of("bob"), ["/staff"])

    def test_a_request_without_the_header_signs_the_session_out(self):
        self.client.get("/", headers=ALICE)
        r = self.client.get("/")  # the Django session cookie alone
        self.assertEqual(r.status_code, 403)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_another_user_in_the_header_replaces_the_session_user(self):
        self.client.get("/", headers=ALICE)
        r = self.client.get("/", headers=BOB)
        self.assertContains(r, '<span id="username">bob</span>')
        self.assertEqual(self.client.session["_auth_user_id"], str(User.objects.get(username="bob").pk))

    def test_a_reused_username_does_not_inherit_the_old_account(self):
        self.client.get("/", headers=ALICE)
        self.client.logout()
        with self.assertLogs("gateway_auth", "WARNING"):
            r = self.client.get("/", headers={**ALICE, "X-Auth-Request-Subject": "another-keycloak-account"})
        self.assertEqual(r.status_code, 403)

    def test_a_username_reused_while_signed_in_signs_out(self):
        self.client.get("/", headers=ALICE)
        with self.assertLogs("gateway_auth", "WARNING"):
            r = self.client.get("/", headers={**ALICE, "X-Auth-Request-Subject": "another-keycloak-account"})
        self.assertEqual(r.status_code, 403)
        self.assertNotIn("_auth_user_id", self.client.session)

    def test_an_inactive_user_stays_out_whatever_keycloak_says(self):
        self.client.get("/", headers=ALICE)
        User.objects.filter(username="alice").update(is_active=False)
        self.assertEqual(self.client.get("/", headers=ALICE).status_code, 403)


class DjangoAdmin(TestCase):
    def test_admin_opens_for_the_admin_role(self):
        r = self.client.get("/admin/", headers=ALICE)
        self.assertContains(r, "Site administration")

    def test_admin_without_the_role_is_a_403_not_a_password_form(self):
        r = self.client.get("/admin/", headers=BOB, follow=True)
        self.assertEqual(r.status_code, 403)
        self.assertNotContains(r, 'type="password"', status_code=403)
        self.assertContains(r, "Django admin is not open to bob", status_code=403)

    def test_admin_save_works_with_csrf_through_the_gateways_origin(self):
        order = Order.objects.create(item="widget", quantity=1, client="billing-service")
        client = self.client_class(enforce_csrf_checks=True)
        page = client.get(f"/admin/orders/order/{order.pk}/change/", headers=ALICE)
        token = page.context["csrf_token"]
        r = client.post(
            f"/admin/orders/order/{order.pk}/change/",
            {"item": "widget", "quantity": "7", "csrfmiddlewaretoken": token, "_save": "Save"},
            headers={**ALICE, "Origin": "http://127.0.0.1:8080"},
            HTTP_HOST="127.0.0.1:8080",
        )
        self.assertEqual(r.status_code, 302, r.content[:500])
        order.refresh_from_db()
        self.assertEqual((order.quantity, order.client), (7, "billing-service"))

    def test_admin_logout_ends_the_gateway_session_too(self):
        self.client.get("/", headers=ALICE)
        r = self.client.post("/admin/logout/", headers=ALICE)
        self.assertRedirects(r, "/_portcullis/logout?rd=/", fetch_redirect_response=False)


class OnlyTheGateway(TestCase):
    def test_identity_headers_from_another_peer_are_refused(self):
        r = self.client.get("/", headers=ALICE, REMOTE_ADDR="10.1.2.3")
        self.assertEqual(r.status_code, 403)
        self.assertFalse(User.objects.filter(username="alice").exists())

    def test_api_calls_from_another_peer_are_refused(self):
        r = self.client.post("/api/orders/", {"item": "x"}, content_type="application/json",
                             headers=BILLING, REMOTE_ADDR="192.0.2.1")
        self.assertEqual(r.status_code, 403)
        self.assertFalse(Order.objects.exists())


class ServicesFromHeaders(TestCase):
    def test_an_order_records_the_client_the_gateway_verified(self):
        r = self.client.post("/api/orders/", {"item": "widget", "quantity": 3}, content_type="application/json",
                             headers=BILLING)
        self.assertEqual(r.status_code, 201, r.content)
        body = json.loads(r.content)
        self.assertEqual((body["client"], body["account"]), ("billing-service", "service-account-billing-service"))

    def test_the_client_field_of_the_body_is_ignored(self):
        self.client.post("/api/orders/", {"item": "widget", "client": "shipping-service"},
                         content_type="application/json", headers=BILLING)
        self.assertEqual(Order.objects.get().client, "billing-service")

    def test_service_accounts_are_no_django_users(self):
        self.client.get("/api/orders/", headers=BILLING)
        self.assertFalse(User.objects.exists())

    def test_the_api_prefix_without_its_slash_makes_no_django_user_either(self):
        self.client.get("/api", headers=BILLING)
        self.assertFalse(User.objects.exists())

    def test_an_api_call_without_the_gateways_client_header_is_401(self):
        r = self.client.get("/api/orders/")
        self.assertEqual(r.status_code, 401)
        self.assertEqual(r["WWW-Authenticate"], 'Bearer realm="portcullis"')

    def test_a_django_session_is_no_credential_on_the_api(self):
        self.client.get("/", headers=ALICE)
        r = self.client.get("/api/orders/")
        self.assertEqual(r.status_code, 401)

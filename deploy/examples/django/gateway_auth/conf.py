"""settings.PORTCULLIS, with its defaults, and how its header names appear in request.META."""

from django.conf import settings

DEFAULTS = {
    "USER_HEADER": "X-Auth-Request-User",
    "EMAIL_HEADER": "X-Auth-Request-Email",
    "SUBJECT_HEADER": "X-Auth-Request-Subject",
    "GROUPS_HEADER": "X-Auth-Request-Groups",
    "ROLES_HEADER": "X-Auth-Request-Roles",
    "CLIENT_HEADER": "X-Auth-Request-Client",
    "SCOPES_HEADER": "X-Auth-Request-Scopes",
    "SUPERUSER_ROLES": ["admin"],
    "STAFF_ROLES": [],
    "ROLE_PREFIX": "role:",
    "IGNORED_ROLES": ["offline_access", "uma_authorization", "default-roles-*"],
    "BEARER_PATHS": ["/api/"],
    "GATEWAY_NETWORKS": ["127.0.0.1/32", "::1/128"],
    "LOGOUT_URL": "/_portcullis/logout?rd=/",
}


def setting(name):
    return getattr(settings, "PORTCULLIS", {}).get(name, DEFAULTS[name])


def meta_key(header):
    """`X-Auth-Request-User` -> `HTTP_X_AUTH_REQUEST_USER`, the key WSGI servers use.

    A header sent as `X_Auth_Request_User` would land on the same key; waitress and
    gunicorn drop header names with `_`, and the gateway removes both spellings anyway.
    """
    return "HTTP_" + header.upper().replace("-", "_")


def header(request, name):
    """The value of the configured header `name` (e.g. "GROUPS_HEADER"), or None."""
    return request.META.get(meta_key(setting(name)))


def header_list(request, name):
    """A list header as the gateway sends it: comma-separated, no spaces, sorted."""
    value = header(request, name) or ""
    return [v.strip() for v in value.split(",") if v.strip()]


def is_bearer_path(path):
    """Whole segments, as the gateway matches route prefixes: /api/ covers /api too."""
    return any(path.startswith(p) or path == p.rstrip("/") for p in setting("BEARER_PATHS"))

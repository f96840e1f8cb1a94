"""Settings of the example shop: a Django app and Django admin behind Portcullis.

    *** NEVER expose this app except through the gateway. ***

Who the caller is comes from plain request headers set by Portcullis (X-Auth-Request-User,
-Email, -Groups, -Roles for people; -Client and -Scopes for services). The gateway removes
whatever a client sent in those headers and sets them only after it verified a login or a
bearer token; anyone who reaches this app without going through the gateway can send
`X-Auth-Request-User: admin` and BE the administrator. So:

  - serve.py binds to 127.0.0.1 by default, and refuses any address that is not loopback
    or private; in a container or a pod, publish only the gateway's port;
  - PORTCULLIS["GATEWAY_NETWORKS"] lists the addresses the gateway connects from, and
    GatewayOnlyMiddleware answers 403 to every other peer (it checks the TCP peer, never a
    header: do not put a proxy that rewrites REMOTE_ADDR in between);
  - every Portcullis route that points here must authenticate (`login` for /, `bearer` for
    /api/): on a `public` route the headers are absent, which logs the Django session out
    (see gateway_auth/middleware.py) — harmless, but nothing there is protected.

Environment:
  DJANGO_SECRET_KEY        required; e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'
  PORTCULLIS_PUBLIC_URL    the gateway's public_url (default http://127.0.0.1:8080): sets
                           ALLOWED_HOSTS, CSRF_TRUSTED_ORIGINS and secure cookies for https
  DJANGO_DB                the SQLite file (default: db.sqlite3 beside manage.py)
  DJANGO_DEBUG             1 for Django's debug pages (never in production)
  DJANGO_STATIC_ROOT       where `manage.py collectstatic` puts files (default: unset, whitenoise
                           serves them from the installed apps)
  PORTCULLIS_GATEWAY_NETWORKS  comma-separated CIDRs the gateway connects from
                           (default 127.0.0.1/32,::1/128)
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to at least 32 characters: "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"

# --- Behind the gateway ------------------------------------------------------------------

PUBLIC_URL = os.environ.get("PORTCULLIS_PUBLIC_URL", "http://127.0.0.1:8080").rstrip("/")
_public = urlsplit(PUBLIC_URL)
if _public.scheme not in ("http", "https") or not _public.hostname or _public.path:
    raise ImproperlyConfigured(f"PORTCULLIS_PUBLIC_URL must be an origin such as https://shop.example.com, got {PUBLIC_URL!r}")

# Portcullis passes Host as the browser sent it, so Django sees the public host name.
ALLOWED_HOSTS = [_public.hostname]
# Django admin's forms are POSTs; Django's CSRF check compares their Origin with this list
# (needed as soon as TLS ends at the gateway and Django itself speaks plain http).
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
# The gateway always sets X-Forwarded-Proto, replacing what a client sent (it believes a
# client's value only from its own trusted_proxies), so Django may believe it — because
# nothing but the gateway reaches Django.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _public.scheme == "https"
# Own cookie names: browsers share one cookie jar per host name (every port of 127.0.0.1
# alike), and names beginning with _portcullis are the gateway's (it removes them).
SESSION_COOKIE_NAME = "shop_sessionid"
CSRF_COOKIE_NAME = "shop_csrftoken"
# The Django session only caches the gateway's answer: the user header on each request
# decides (a different user, or none, logs the session out). Keep it short anyway.
SESSION_COOKIE_AGE = 8 * 3600

PORTCULLIS = {
    # The gateway's header names ([headers] in gateway.toml; these are its defaults).
    "USER_HEADER": "X-Auth-Request-User",
    "EMAIL_HEADER": "X-Auth-Request-Email",
    "SUBJECT_HEADER": "X-Auth-Request-Subject",
    "GROUPS_HEADER": "X-Auth-Request-Groups",
    "ROLES_HEADER": "X-Auth-Request-Roles",
    "CLIENT_HEADER": "X-Auth-Request-Client",
    "SCOPES_HEADER": "X-Auth-Request-Scopes",
    # Keycloak roles that make a user staff and superuser (set, and taken away, on every
    # request); STAFF_ROLES make staff only (Django admin with the permissions of their groups).
    "SUPERUSER_ROLES": ["admin"],
    "STAFF_ROLES": [],
    # Keycloak group paths (/staff/engineering) become Django groups of that name; roles
    # become groups named ROLE_PREFIX + role. Only groups of these two shapes are managed
    # (added and removed to match the headers); other Django groups are left alone.
    "ROLE_PREFIX": "role:",
    # Roles every Keycloak user has: no Django group for them (fnmatch patterns).
    "IGNORED_ROLES": ["offline_access", "uma_authorization", "default-roles-*"],
    # Paths served to services (a `bearer` route): no Django users there, see gateway_auth/drf.py.
    "BEARER_PATHS": ["/api/"],
    # Where the gateway connects from; GatewayOnlyMiddleware refuses every other peer.
    "GATEWAY_NETWORKS": [
        n.strip()
        for n in os.environ.get("PORTCULLIS_GATEWAY_NETWORKS", "127.0.0.1/32,::1/128").split(",")
        if n.strip()
    ],
    # Where to send a signed-out user: the gateway ends its session and Keycloak's.
    "LOGOUT_URL": "/_portcullis/logout?rd=/",
}

# Only the gateway's identity, never a password: no ModelBackend, no login form.
AUTHENTICATION_BACKENDS = ["gateway_auth.backends.GatewayUserBackend"]

# --- Django -----------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "gateway_auth",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "gateway_auth.middleware.GatewayOnlyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "gateway_auth.middleware.GatewayUserMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

REST_FRAMEWORK = {
    # Services only: the gateway verified the bearer token and its scopes; DRF reads who
    # called from the headers. No SessionAuthentication: a browser session is no credential
    # on the API.
    "DEFAULT_AUTHENTICATION_CLASSES": ["gateway_auth.drf.GatewayServiceAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "shop" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB") or str(BASE_DIR / "db.sqlite3"),
        # Several waitress threads write (group sync, orders): wait for the lock, not fail.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Django admin's CSS and JS are served by whitenoise straight from the installed apps (no
# collectstatic step). For compressed, cache-busted files set DJANGO_STATIC_ROOT and run
# `manage.py collectstatic`.
STATIC_ROOT = os.environ.get("DJANGO_STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"gateway_auth": {"handlers": ["stderr"], "level": "INFO"}},
}

"""Settings of the django-oauth-toolkit test server (not for production use).

Environment:
  DOT_DATA_DIR      directory for db.sqlite3 and the OIDC signing key
                    (default: $TMPDIR/portcullis-dot-data; run.py uses a fresh temp dir
                    of its own when this is unset)
  DOT_ACCESS_TTL    access-token lifetime in seconds (default 3600)
  DOT_OIDC          "1" (default) serves OIDC discovery + JWKS under /o/; "0" turns it off
  DOT_SECRET_ITERATIONS
                    PBKDF2 iterations used to hash client secrets (default: Django's,
                    1,000,000 = ~0.4 s per client authentication on a 2-core VM); lower
                    it for load tests.
"""

import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(os.environ.get("DOT_DATA_DIR") or Path(tempfile.gettempdir()) / "portcullis-dot-data")
DATA_DIR.mkdir(parents=True, exist_ok=True)

ACCESS_TTL = int(os.environ.get("DOT_ACCESS_TTL") or 3600)
OIDC_ENABLED = (os.environ.get("DOT_OIDC") or "1").strip().lower() not in ("0", "false", "no", "off")

SECRET_KEY = os.environ.get("DOT_SECRET_KEY") or "portcullis-e2e-dot-not-a-secret-0123456789abcdefghijkl"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]

# As in a stock Django project. CommonMiddleware sets Content-Length, without which
# waitress closes the connection after every response (no keep-alive); it also
# redirects a slash-less path such as /o/introspect with 301 to /o/introspect/
# (APPEND_SLASH), which turns a POST into a body-less GET for clients that follow it.
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "dotserver.urls"
WSGI_APPLICATION = "dotserver.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "db.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

PASSWORD_HASHERS = ["dotserver.hashers.ClientSecretPBKDF2Hasher"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

SCOPES = {
    "read": "Read scope",
    "write": "Write scope",
    "introspection": "Introspect tokens (RFC 7662)",
    "inventory:read": "Read the inventory",
    "inventory:write": "Change the inventory",
}

OAUTH2_PROVIDER = {
    "SCOPES": dict(SCOPES),
    "SCOPES_BACKEND_CLASS": "dotserver.scopes.PerApplicationScopes",
    "ACCESS_TOKEN_EXPIRE_SECONDS": ACCESS_TTL,
    "OIDC_ENABLED": False,
}


def _oidc_private_key_pem():
    """An RSA key kept in DATA_DIR, generated on first use."""
    path = DATA_DIR / "oidc-rsa.pem"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pem)
        os.replace(tmp, path)  # atomic: concurrent starters agree on one key
    return path.read_text()


if OIDC_ENABLED:
    OAUTH2_PROVIDER["SCOPES"]["openid"] = "OpenID Connect"
    OAUTH2_PROVIDER["OIDC_ENABLED"] = True
    OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"] = _oidc_private_key_pem()

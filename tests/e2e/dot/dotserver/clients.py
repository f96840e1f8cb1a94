"""The OAuth2 applications the test server registers, with their plaintext secrets.

run.py creates these idempotently at start-up; scopes.PerApplicationScopes restricts
each one to its `scopes` (DOT has no per-application scope field, so this table is
the restriction).  An application not listed here may request any scope in SCOPES.
"""

CLIENTS = {
    "inventory-service": {
        "name": "Inventory service",
        "secret": "inventory-secret-0123456789abcdef",
        "scopes": ["read", "write", "inventory:read", "inventory:write"],
        # granted when the token request names no scope
        "default_scopes": ["inventory:read", "inventory:write"],
    },
    "audit-service": {
        "name": "Audit service",
        "secret": "audit-secret-0123456789abcdef",
        "scopes": ["inventory:read"],
        "default_scopes": ["inventory:read"],
    },
    "portcullis": {
        "name": "Portcullis gateway (introspection client)",
        "secret": "portcullis-introspect-0123456789abcdef",
        "scopes": ["introspection"],
        "default_scopes": ["introspection"],
    },
}


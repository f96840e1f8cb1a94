#!/usr/bin/env python3
"""Writes realm-internal.json here: the realm export of the Keycloak test suite
(tests/e2e/keycloak/realm-internal.json) with the gateway URLs of this compose file in place
of the export's http://127.0.0.1:8080. Nothing else changes: the clients, client scopes,
mappers, roles, groups, users and their secrets and passwords are the suite's (test values:
a playground only).

    python3 deploy/compose/realm.py            rewrite realm-internal.json
    python3 deploy/compose/realm.py --check    exit 1 when it differs from what it would write

The browser's gateway is http://localhost:8080 (redirect and post-logout URIs); Keycloak
sends back-channel logouts from inside the compose network, where that is Keycloak itself,
so it calls the gateway by its service name.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = os.path.join(HERE, "..", "..", "tests", "e2e", "keycloak", "realm-internal.json")
OUT = os.path.join(HERE, "realm-internal.json")

EXPORT_GATEWAY = "http://127.0.0.1:8080"
BROWSER_GATEWAY = "http://localhost:8080"
NETWORK_GATEWAY = "http://portcullis:8080"


def gateway_url(value, key):
    if not value.startswith(EXPORT_GATEWAY):
        return value
    origin = NETWORK_GATEWAY if key == "backchannel.logout.url" else BROWSER_GATEWAY
    return origin + value[len(EXPORT_GATEWAY):]


def rewrite(node, key=None):
    """Every string that starts with the export's gateway origin, anywhere in the export."""
    if isinstance(node, dict):
        return {k: rewrite(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite(v, key) for v in node]
    if isinstance(node, str):
        # post.logout.redirect.uris holds several URIs joined with "##".
        return "##".join(gateway_url(part, key) for part in node.split("##"))
    return node


def render():
    with open(SUITE, encoding="utf-8") as f:
        realm = json.load(f)
    return json.dumps(rewrite(realm), indent=2, ensure_ascii=False) + "\n"


def main(argv):
    text = render()
    if argv[1:] == ["--check"]:
        try:
            with open(OUT, encoding="utf-8") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        if not same:
            print(f"realm.py: {OUT} differs from the suite's export with the compose URLs: "
                  "run python3 deploy/compose/realm.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

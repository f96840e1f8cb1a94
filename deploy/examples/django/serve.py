#!/usr/bin/env python
"""Serve the example shop with waitress, on loopback or a private address only.

    .venv/bin/python serve.py [--listen 127.0.0.1:8000] [--migrate] [--threads N] [--access-log]

The app trusts the identity headers of the gateway, so it must never be reachable except
through the gateway: an address that is not loopback or private (0.0.0.0, a public IP) is
refused. Once the socket listens, one line goes to stdout (flushed):

    READY {"url": "http://127.0.0.1:8000", "port": 8000}

Everything else goes to stderr. SIGTERM or SIGINT stops it with exit status 0.

waitress is started without `trusted_proxy`, so REMOTE_ADDR is the TCP peer (what
GatewayOnlyMiddleware checks), and it drops request headers whose names contain `_`.
"""

import argparse
import ipaddress
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def listen_address(value):
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r}: write HOST:PORT, e.g. 127.0.0.1:8000")
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{host!r}: give an IP address, not a name") from None
    if ip.is_unspecified or not (ip.is_loopback or ip.is_private):
        raise argparse.ArgumentTypeError(
            f"{host} is reachable from outside: this app trusts the gateway's identity headers "
            "and must listen on loopback or a private address that only the gateway reaches"
        )
    return host, int(port)


def access_log(app):
    from gateway_auth.conf import meta_key, setting

    user_key, client_key = meta_key(setting("USER_HEADER")), meta_key(setting("CLIENT_HEADER"))

    def logged(environ, start_response):
        def sr(status, headers, exc_info=None):
            # No query string (it may hold anything) and no token; who called, as the gateway said.
            sys.stderr.write(
                "shop: %s %s %s -> %s user=%s client=%s\n"
                % (
                    environ.get("REMOTE_ADDR"),
                    environ.get("REQUEST_METHOD"),
                    environ.get("PATH_INFO"),
                    status.split(" ", 1)[0],
                    environ.get(user_key, "-"),
                    environ.get(client_key, "-"),
                )
            )
            sys.stderr.flush()
            return start_response(status, headers, exc_info)

        return app(environ, sr)

    return logged


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", type=listen_address, default="127.0.0.1:8000", help="HOST:PORT (default 127.0.0.1:8000; port 0 picks a free one)")
    p.add_argument("--migrate", action="store_true", help="apply migrations first")
    p.add_argument("--threads", type=int, default=4, help="waitress worker threads (default 4)")
    p.add_argument("--access-log", action="store_true", help="one line per request on stderr")
    args = p.parse_args(argv)
    if isinstance(args.listen, str):
        args.listen = listen_address(args.listen)
    host, port = args.listen

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    sys.path.insert(0, HERE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    if args.migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)

    import waitress
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    if args.access_log:
        application = access_log(application)
    server = waitress.create_server(application, host=host, port=port, threads=args.threads, ident="shop")
    try:
        bound = int(server.effective_port)
        shown = f"[{host}]" if ":" in host else host
        sys.stdout.write("READY " + json.dumps({"url": f"http://{shown}:{bound}", "port": bound}) + "\n")
        sys.stdout.flush()
        server.run()  # returns after SIGTERM/SIGINT
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Start the django-oauth-toolkit test server for Portcullis' end-to-end tests.

    tests/e2e/dot/.venv/bin/python tests/e2e/dot/run.py [--port N]

Migrates the sqlite database in $DOT_DATA_DIR (a fresh temp dir, removed at exit, when
unset), creates or updates the applications in dotserver/clients.py with their known
plaintext secrets, then serves on 127.0.0.1 with waitress. Once the socket is listening
it prints exactly one line to stdout:

    READY {"issuer": "http://127.0.0.1:N/o", "port": N, "introspect": ".../o/introspect/",
           "token": ".../o/token/", "revoke": ".../o/revoke_token/"}

Everything else (warnings, the optional access log) goes to stderr. SIGTERM or SIGINT
stops it with exit status 0.
"""

import argparse
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 (default) picks a free one")
    p.add_argument("--threads", type=int, default=4, help="waitress worker threads (default 4)")
    p.add_argument(
        "--access-log",
        action="store_true",
        default=os.environ.get("DOT_ACCESS_LOG") == "1",
        help="log each request to stderr (also DOT_ACCESS_LOG=1)",
    )
    return p.parse_args(argv)


def _marker(client_id, secret, stored_hash):
    return hashlib.sha256(f"{client_id}\0{secret}\0{stored_hash}".encode()).hexdigest()


def ensure_applications():
    """Create or update the applications of dotserver.clients.CLIENTS (idempotent).

    Checking a plaintext secret against its PBKDF2 hash costs ~0.4 s, so a verified
    (client, secret, hash) triple is remembered in the table portcullis_verified and
    not checked again on the next start with the same database.
    """
    from django.contrib.auth.hashers import check_password, identify_hasher
    from django.db import connection
    from oauth2_provider.models import get_application_model

    from dotserver.clients import CLIENTS

    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS portcullis_verified (client_id TEXT PRIMARY KEY, marker TEXT)")
        c.execute("SELECT client_id, marker FROM portcullis_verified")
        verified = dict(c.fetchall())

    Application = get_application_model()
    for client_id, spec in CLIENTS.items():
        app = Application.objects.filter(client_id=client_id).first()
        if app is None:
            app = Application(client_id=client_id)
            stale_secret = True
        else:
            try:
                # must_update: hashed with another iteration count (DOT_SECRET_ITERATIONS)
                stale_secret = identify_hasher(app.client_secret).must_update(app.client_secret)
            except ValueError:  # not hashed
                stale_secret = True
            if not stale_secret and verified.get(client_id) != _marker(client_id, spec["secret"], app.client_secret):
                stale_secret = not check_password(spec["secret"], app.client_secret)
        app.name = spec["name"]
        app.client_type = Application.CLIENT_CONFIDENTIAL
        app.authorization_grant_type = Application.GRANT_CLIENT_CREDENTIALS
        app.redirect_uris = ""
        app.skip_authorization = True
        app.hash_client_secret = True
        if stale_secret:
            # plaintext here; DOT's ClientSecretField hashes it on save
            app.client_secret = spec["secret"]
        app.save()
        with connection.cursor() as c:
            c.execute(
                "INSERT OR REPLACE INTO portcullis_verified (client_id, marker) VALUES (%s, %s)",
                [client_id, _marker(client_id, spec["secret"], app.client_secret)],
            )


def template_path():
    """Where a migrated database with the applications is kept for fresh starts.

    Migrating an empty sqlite file takes ~2.5 s; copying a template takes
    milliseconds. The name carries a hash of everything that shapes the database,
    so an edit of the requirements or the project's code makes a new template.
    """
    if os.environ.get("DOT_DB_TEMPLATE") == "0":
        return None
    h = hashlib.sha256()
    names = ["requirements.txt", "run.py"] + sorted(
        os.path.join("dotserver", n) for n in os.listdir(os.path.join(HERE, "dotserver")) if n.endswith(".py")
    )
    for name in names:
        h.update(name.encode() + b"\0")
        with open(os.path.join(HERE, name), "rb") as f:
            h.update(f.read())
    h.update((os.environ.get("DOT_SECRET_ITERATIONS") or "").encode())
    h.update(sys.version.encode())
    venv = os.path.join(HERE, ".venv")
    where = venv if os.path.isdir(venv) else tempfile.gettempdir()
    return os.path.join(where, f"dot-db-template-{h.hexdigest()[:16]}.sqlite3")


def prepare_database(db_path):
    """Migrate and create the applications, starting from the template if there is one."""
    from django.core.management import call_command
    from django.db import connections

    template = template_path()
    fresh = not os.path.exists(db_path)
    if fresh and template and os.path.exists(template):
        shutil.copyfile(template, db_path)
    call_command("migrate", interactive=False, verbosity=0, skip_checks=True)
    ensure_applications()
    if fresh and template and not os.path.exists(template):
        connections.close_all()
        tmp = f"{template}.{os.getpid()}.tmp"
        shutil.copyfile(db_path, tmp)
        os.replace(tmp, template)
        where = os.path.dirname(template)
        if where == os.path.join(HERE, ".venv"):  # drop templates of earlier versions
            for name in os.listdir(where):
                if name.startswith("dot-db-template-") and name.endswith(".sqlite3"):
                    if os.path.join(where, name) != template:
                        try:
                            os.remove(os.path.join(where, name))
                        except OSError:
                            pass


def access_log(app):
    def logged(environ, start_response):
        def sr(status, headers, exc_info=None):
            sys.stderr.write(
                "dot: %s %s -> %s\n"  # no query string: it may hold a token
                % (environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), status)
            )
            sys.stderr.flush()
            return start_response(status, headers, exc_info)

        return app(environ, sr)

    return logged


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    own_data_dir = None
    if not os.environ.get("DOT_DATA_DIR"):
        own_data_dir = tempfile.mkdtemp(prefix="portcullis-dot-")
        os.environ["DOT_DATA_DIR"] = own_data_dir

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    server = None
    try:
        sys.path.insert(0, HERE)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotserver.settings")
        import django

        django.setup()
        from django.conf import settings

        prepare_database(settings.DATABASES["default"]["NAME"])

        import waitress
        from django.core.wsgi import get_wsgi_application

        application = get_wsgi_application()
        if args.access_log:
            application = access_log(application)
        server = waitress.create_server(
            application,
            host="127.0.0.1",
            port=args.port,
            threads=args.threads,
            ident="portcullis-dot",
        )
        port = int(server.effective_port)
        base = f"http://127.0.0.1:{port}/o"
        ready = {
            "issuer": base,
            "port": port,
            "introspect": f"{base}/introspect/",
            "token": f"{base}/token/",
            "revoke": f"{base}/revoke_token/",
        }
        # create_server() has bound and is listening: connections queue from here on.
        sys.stdout.write("READY " + json.dumps(ready) + "\n")
        sys.stdout.flush()
        server.run()  # returns after SIGTERM/SIGINT (waitress catches our SystemExit)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    finally:
        if server is not None:
            try:
                server.close()
            except Exception:
                pass
        if own_data_dir:
            shutil.rmtree(own_data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

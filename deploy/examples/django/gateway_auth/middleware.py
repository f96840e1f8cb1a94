"""Who a request comes from: only the gateway, and the person it names.

GatewayOnlyMiddleware  refuses every peer that is not the gateway (first line of defence
                       after binding to loopback or a private network)
GatewayUserMiddleware  signs the person named by X-Auth-Request-User in, creates them on
                       first sight, and makes their Django user match the headers on every
                       request; no header, no user
"""

import ipaddress
import logging

from django.contrib import auth
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponseForbidden

from .backends import GatewayUserBackend
from .conf import is_bearer_path, meta_key, setting

log = logging.getLogger(__name__)


class GatewayOnlyMiddleware:
    """403 for every TCP peer outside PORTCULLIS["GATEWAY_NETWORKS"].

    The identity headers are trusted because only the gateway can send them here; this
    makes "only the gateway" a checked fact where the network allows it (the gateway's
    pod or host address on a private network). It reads REMOTE_ADDR, the TCP peer as
    waitress reports it — never X-Forwarded-For, which a caller writes. On loopback every
    local process is a peer of 127.0.0.1: there the bind address is the protection.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.networks = [ipaddress.ip_network(n, strict=False) for n in setting("GATEWAY_NETWORKS")]

    def __call__(self, request):
        peer = request.META.get("REMOTE_ADDR", "")
        try:
            ip = ipaddress.ip_address(peer)
            ip = getattr(ip, "ipv4_mapped", None) or ip
        except ValueError:
            ip = None
        if ip is None or not any(ip in net for net in self.networks):
            log.warning("refused %s %s from %r: not the gateway", request.method, request.path, peer)
            return HttpResponseForbidden(
                "Only the gateway may call this app.\n", content_type="text/plain; charset=utf-8"
            )
        return self.get_response(request)


class GatewayUserMiddleware(RemoteUserMiddleware):
    """RemoteUserMiddleware on the gateway's user header, re-syncing on every request.

    Django's RemoteUserMiddleware signs the header's user in (through the backend, which
    creates them on first sight) and keeps them in the Django session; when the header
    names someone else, it signs the old user out first; and — `force_logout_if_no_header`
    — a request without the header signs the session's user out.

    That last point is why this is not PersistentRemoteUserMiddleware, which keeps the
    session when the header is missing. Persistent suits a server that authenticates only a
    login URL; here the gateway vouches on every request of a `login` route, so a request
    without the header did not come through it as a signed-in person (a `public` route,
    someone on the loopback with a copied session cookie): the Django session alone must
    not be enough, or logging out at the gateway, or losing a role in Keycloak, would not
    reach Django.

    Django's own middleware consults the backend only when the session has no user yet,
    so roles taken away in Keycloak would never reach a signed-in user: after it, this one
    syncs the user with the headers once per request.

    On BEARER_PATHS (the API) it does nothing: services are no Django users; the DRF
    authentication class reads them (see drf.py).
    """

    # Django 5.2's async path looks up "HTTP_" + header; this app runs under WSGI.
    async_capable = False

    def __init__(self, get_response):
        super().__init__(get_response)
        self.header = meta_key(setting("USER_HEADER"))

    def process_request(self, request):
        if is_bearer_path(request.path_info):
            return
        super().process_request(request)
        user = request.user
        if not user.is_authenticated:
            return
        backend_path = request.session.get(auth.BACKEND_SESSION_KEY)
        backend = auth.load_backend(backend_path) if backend_path else None
        if isinstance(backend, GatewayUserBackend) and not backend.sync(request, user):
            auth.logout(request)
            request.user = AnonymousUser()

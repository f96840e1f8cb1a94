"""Django REST framework: the calling service, as the gateway verified it.

On a `bearer` route Portcullis has already verified the token (signature, issuer,
audience, expiry), the route's `allow = { clients = [...] }` and the scopes the method needs
(`scopes = { read = [...], write = [...] }`): a request without them never gets here. What
reaches the API carries X-Auth-Request-Client (the token's `azp`), X-Auth-Request-Scopes
and, for Keycloak service accounts, X-Auth-Request-User = service-account-<client>.

There is no CSRF check to add: the credential is the bearer token, which a browser never
attaches by itself, and the gateway replaces any identity header a caller sends.
"""

from rest_framework import authentication, exceptions

from .conf import header, header_list


class ServicePrincipal:
    """A calling service: its client id, the scopes of its token, its account name."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, client_id, scopes, account=None):
        self.client_id = client_id
        self.scopes = frozenset(scopes)
        self.account = account

    def has_scope(self, scope):
        return scope in self.scopes

    def get_username(self):
        return self.account or self.client_id

    def __str__(self):
        return self.client_id

    def __repr__(self):
        return f"ServicePrincipal({self.client_id!r}, scopes={sorted(self.scopes)})"


class GatewayServiceAuthentication(authentication.BaseAuthentication):
    """`request.user` = ServicePrincipal from the gateway's client header.

    No client header means the request did not come through a `bearer` route of the
    gateway: 401, never an anonymous pass.
    """

    def authenticate(self, request):
        client = header(request, "CLIENT_HEADER")
        if not client:
            return None
        if "," in client:
            raise exceptions.AuthenticationFailed("more than one client header")
        principal = ServicePrincipal(
            client_id=client,
            scopes=header_list(request, "SCOPES_HEADER"),
            account=header(request, "USER_HEADER"),
        )
        return (principal, None)

    def authenticate_header(self, request):
        # Makes DRF answer 401 (not 403) to a request without the gateway's identity.
        return 'Bearer realm="portcullis"'

from django.urls import include, path
from oauth2_provider import views as oauth2_views

urlpatterns = [
    # /o/token/, /o/introspect/, /o/revoke_token/, /o/authorize/,
    # /o/.well-known/oauth-authorization-server (RFC 8414, names introspection_endpoint),
    # /o/.well-known/openid-configuration and /o/.well-known/jwks.json (when DOT_OIDC=1)
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    # RFC 8414's own location for the issuer http://host/o
    path(
        ".well-known/oauth-authorization-server/<path:issuer_path>",
        oauth2_views.OAuthServerMetadataView.as_view(),
        name="oauth-server-metadata-root",
    ),
]

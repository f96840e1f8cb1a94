from django.apps import AppConfig


class GatewayAuthConfig(AppConfig):
    name = "gateway_auth"
    verbose_name = "Portcullis identities"

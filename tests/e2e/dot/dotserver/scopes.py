"""Per-application scope restriction through DOT's pluggable SCOPES_BACKEND_CLASS."""

from oauth2_provider.scopes import SettingsScopes

from .clients import CLIENTS


class PerApplicationScopes(SettingsScopes):
    """Clients listed in clients.CLIENTS may only obtain their own scopes.

    A token request asking for a scope outside the list is refused by DOT with
    400 {"error": "invalid_scope"}; a request naming no scope gets `default_scopes`.
    """

    @staticmethod
    def _entry(application):
        if application is None:
            return None
        return CLIENTS.get(getattr(application, "client_id", None))

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        entry = self._entry(application)
        if entry is None:
            return super().get_available_scopes(application, request, *args, **kwargs)
        return list(entry["scopes"])

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        entry = self._entry(application)
        if entry is None:
            return super().get_default_scopes(application, request, *args, **kwargs)
        return list(entry["default_scopes"])

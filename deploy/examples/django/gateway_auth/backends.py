"""The authentication backend: the gateway's user header is the only credential."""

import logging

from django.contrib.auth.backends import RemoteUserBackend

from . import identity

log = logging.getLogger(__name__)


class GatewayUserBackend(RemoteUserBackend):
    """Creates the user on the first request and makes it match the gateway's headers.

    A subclass of ModelBackend through RemoteUserBackend, so permissions still come from
    Django (a user's groups and their permissions, superuser status); but it takes no
    password: listed alone in AUTHENTICATION_BACKENDS, nobody signs in any other way.
    `is_active` stays Django's to decide: an inactive user is refused whatever Keycloak says.
    """

    create_unknown_user = True

    def configure_user(self, request, user, created=True):
        # Called by authenticate() for new and known users alike (Django >= 4.1).
        try:
            identity.apply(user, identity.Claims.from_request(request, user.get_username()), created=created)
        except identity.SubjectMismatch as e:
            log.warning("refused: %s", e)
            user._portcullis_refused = True
            return user
        request._portcullis_synced = True
        return user

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and not getattr(user, "_portcullis_refused", False)

    def sync(self, request, user):
        """Makes a user already signed in (from the Django session) match this request.

        Returns False when the user must be signed out (subject mismatch, inactive).
        """
        if getattr(request, "_portcullis_synced", False):
            return True
        if not super().user_can_authenticate(user):
            return False
        try:
            identity.apply(user, identity.Claims.from_request(request, user.get_username()))
        except identity.SubjectMismatch as e:
            log.warning("signed out: %s", e)
            return False
        request._portcullis_synced = True
        return True

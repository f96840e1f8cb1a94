from django.conf import settings
from django.db import models


class RemoteIdentity(models.Model):
    """Binds a Django user to the Keycloak account (`sub`) that first used its username.

    Usernames can be freed and taken again in Keycloak (a user deleted, a new one created
    with the same name); `sub` never is. A username arriving with another `sub` than the
    one recorded is refused instead of inheriting the old account's data and rights.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="remote_identity")
    subject = models.CharField(max_length=255, unique=True, help_text="Keycloak's `sub` (X-Auth-Request-Subject)")
    first_seen = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.user} = {self.subject}"

from django.db import models


class Order(models.Model):
    """An order placed by a service through the API (or edited in Django admin)."""

    item = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    # Who placed it, as the gateway verified it: the token's client (X-Auth-Request-Client)
    # and its service account (X-Auth-Request-User), recorded by the API, never sent by it.
    client = models.CharField(max_length=255, editable=False)
    account = models.CharField(max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"#{self.pk} {self.quantity} x {self.item} ({self.client})"

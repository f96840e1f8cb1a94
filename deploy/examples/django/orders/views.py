from rest_framework import generics

from .models import Order
from .serializers import OrderSerializer


class OrderList(generics.ListCreateAPIView):
    """GET: every order (scope orders:read); POST: a new one (scope orders:write).

    The scopes are the gateway's to check (`scopes = { read = [...], write = [...] }` on the
    route): a POST with a token lacking orders:write is refused there with 403
    insufficient_scope and never reaches this view.
    """

    queryset = Order.objects.all()
    serializer_class = OrderSerializer

    def perform_create(self, serializer):
        principal = self.request.user  # gateway_auth.drf.ServicePrincipal
        serializer.save(client=principal.client_id, account=principal.account or "")

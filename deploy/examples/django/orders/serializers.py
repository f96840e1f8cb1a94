from rest_framework import serializers

from .models import Order


class OrderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Order
        fields = ["id", "item", "quantity", "client", "account", "created_at"]
        read_only_fields = ["client", "account", "created_at"]

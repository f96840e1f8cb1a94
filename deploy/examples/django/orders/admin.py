from django.contrib import admin

from .models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "quantity", "client", "created_at")
    list_filter = ("client",)
    readonly_fields = ("client", "account", "created_at")

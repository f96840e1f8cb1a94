from django.contrib import admin

from .models import RemoteIdentity


@admin.register(RemoteIdentity)
class RemoteIdentityAdmin(admin.ModelAdmin):
    list_display = ("user", "subject", "first_seen")
    search_fields = ("user__username", "subject")
    readonly_fields = ("first_seen",)

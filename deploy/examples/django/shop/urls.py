from django.contrib import admin
from django.urls import include, path

from . import views

admin.site.site_header = "Shop administration (signed in by Portcullis)"

urlpatterns = [
    path("", views.home, name="home"),
    path("logout/", views.logout, name="logout"),
    # Before admin.site.urls, so they win: no password form, and sign-out goes through the
    # gateway (Django admin's "Log out" button POSTs to admin/logout/).
    path("admin/login/", views.admin_login, name="admin-login"),
    path("admin/logout/", views.logout, name="admin-logout"),
    path("admin/", admin.site.urls),
    path("api/", include("orders.urls")),
]

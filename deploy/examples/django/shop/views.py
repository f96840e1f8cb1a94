"""The people's side: a home page, sign-out, and Django admin's login without a form."""

from django.contrib import auth
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from gateway_auth.conf import setting


def no_identity(request):
    """A request that reached a people's page without the gateway's user header."""
    return render(request, "no_identity.html", status=403)


@require_GET
def home(request):
    if not request.user.is_authenticated:
        return no_identity(request)
    groups = sorted(request.user.groups.values_list("name", flat=True))
    return render(request, "home.html", {"groups": groups})


@require_POST
def logout(request):
    """Ends the Django session, then the gateway's (which ends Keycloak's)."""
    auth.logout(request)
    return redirect(setting("LOGOUT_URL"))


def admin_login(request):
    """Replaces Django admin's login form: there is no password to type here.

    Django admin sends whoever lacks is_staff to its login page; a staff member goes on to
    where they were going, anyone else gets a 403 that says what is missing.
    """
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        target = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            target = "admin:index"
        return redirect(target)
    if not user.is_authenticated:
        return no_identity(request)
    context = {"roles": setting("SUPERUSER_ROLES") + setting("STAFF_ROLES")}
    return render(request, "admin_forbidden.html", context, status=403)

"""What the gateway says about a person, and making the Django user match it.

Called on every request of a signed-in person (see middleware.py): the headers are the
truth at that moment, and the Django user follows them — email, staff and superuser flags,
and the managed groups, added and removed. Writes happen only when something changed, so
a steady user costs two small queries per request.
"""

import fnmatch
import logging
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from .conf import header, header_list, setting
from .models import RemoteIdentity

log = logging.getLogger(__name__)

GROUP_NAME_MAX = Group._meta.get_field("name").max_length


@dataclass(frozen=True)
class Claims:
    """The identity headers of one request."""

    username: str
    email: str
    subject: str | None
    groups: frozenset
    roles: frozenset

    @classmethod
    def from_request(cls, request, username):
        return cls(
            username=username,
            email=header(request, "EMAIL_HEADER") or "",
            subject=header(request, "SUBJECT_HEADER") or None,
            groups=frozenset(header_list(request, "GROUPS_HEADER")),
            roles=frozenset(header_list(request, "ROLES_HEADER")),
        )

    @property
    def is_superuser(self):
        return bool(self.roles & set(setting("SUPERUSER_ROLES")))

    @property
    def is_staff(self):
        return self.is_superuser or bool(self.roles & set(setting("STAFF_ROLES")))

    def django_groups(self):
        """The names of the Django groups this identity should be in."""
        names = set()
        for path in self.groups:
            if not path.startswith("/"):
                # Keycloak's group mapper with "Full group path" off sends bare names,
                # which cannot be told apart from groups made in Django: skipped.
                log.warning("group %r is no Keycloak group path: turn on Full group path in the groups mapper", path)
                continue
            names.add(path)
        prefix = setting("ROLE_PREFIX")
        ignored = setting("IGNORED_ROLES")
        for role in self.roles:
            if not any(fnmatch.fnmatchcase(role, pattern) for pattern in ignored):
                names.add(prefix + role)
        too_long = {n for n in names if len(n) > GROUP_NAME_MAX}
        for name in too_long:
            log.warning("group %r is longer than %d characters: skipped", name, GROUP_NAME_MAX)
        return names - too_long


def is_managed(group_name):
    """Groups this module adds and removes; any other Django group is left alone."""
    return group_name.startswith("/") or group_name.startswith(setting("ROLE_PREFIX"))


class SubjectMismatch(Exception):
    """The username belongs to another Keycloak account than the one now using it."""


def bind_subject(user, claims):
    """Records the user's `sub` at first sight; refuses a different one later."""
    if claims.subject is None:
        return  # the gateway sends no subject header: nothing to bind
    try:
        known = user.remote_identity.subject
    except RemoteIdentity.DoesNotExist:
        try:
            with transaction.atomic():
                RemoteIdentity.objects.create(user=user, subject=claims.subject)
            return
        except IntegrityError:
            # Either a concurrent first request of the same user (fine if it stored the
            # same subject), or this subject already belongs to another Django user: the
            # Keycloak account was renamed. Rename the Django user by hand to keep its data.
            known = RemoteIdentity.objects.filter(user=user).values_list("subject", flat=True).first()
            if known is None:
                raise SubjectMismatch(
                    f"subject {claims.subject} already belongs to another Django user "
                    f"(renamed in Keycloak?): not signing in as {user.get_username()}"
                ) from None
    if known != claims.subject:
        raise SubjectMismatch(
            f"username {user.get_username()} belongs to subject {known}, "
            f"not {claims.subject} (username reused in Keycloak?)"
        )


def apply(user, claims, created=False):
    """Makes `user` match `claims`. Raises SubjectMismatch (nothing changed then)."""
    bind_subject(user, claims)

    changed = []
    if created:
        user.set_unusable_password()  # no password login, ever: the gateway decides
        changed.append("password")
    for field, value in (
        ("email", claims.email),
        ("is_staff", claims.is_staff),
        ("is_superuser", claims.is_superuser),
    ):
        if getattr(user, field) != value:
            setattr(user, field, value)
            changed.append(field)
    if changed:
        user.save(update_fields=changed)

    want = claims.django_groups()
    have = dict(user.groups.values_list("name", "id"))
    to_add = sorted(want - have.keys())
    to_remove = sorted(n for n in have if is_managed(n) and n not in want)
    if to_add:
        groups = [Group.objects.get_or_create(name=n)[0] for n in to_add]
        Through = user.groups.through
        # ignore_conflicts: two first requests of one user at once (a page and its jsi18n)
        Through.objects.bulk_create(
            [Through(user_id=user.pk, group_id=g.pk) for g in groups], ignore_conflicts=True
        )
    if to_remove:
        user.groups.remove(*(have[n] for n in to_remove))
    fields = [c for c in changed if c != "password"]
    if created or fields or to_add or to_remove:
        log.info(
            "user %s:%s%s%s%s",
            user.get_username(),
            " created" if created else "",
            f" set {fields}" if fields else "",
            f" joined {to_add}" if to_add else "",
            f" left {to_remove}" if to_remove else "",
        )

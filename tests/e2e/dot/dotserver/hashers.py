"""Client secrets are hashed with Django's PBKDF2-SHA256, as in any DOT 2+/3 deployment.

The iteration count comes from DOT_SECRET_ITERATIONS (default: Django's own). A hash
records its iteration count, so secrets hashed with one count still verify under another.
"""

import os

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class ClientSecretPBKDF2Hasher(PBKDF2PasswordHasher):
    algorithm = "pbkdf2_sha256"
    iterations = int(os.environ.get("DOT_SECRET_ITERATIONS") or PBKDF2PasswordHasher.iterations)

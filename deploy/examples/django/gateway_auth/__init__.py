"""Django users, groups and service principals from the identity headers of Portcullis.

No OAuth here: the gateway logs people in against Keycloak and verifies services' bearer
tokens; this app reads who the caller is from the headers the gateway sets.
"""

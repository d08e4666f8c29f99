"""A minimal Django site using django-oauth-toolkit, for the collection's tests."""

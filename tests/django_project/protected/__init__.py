"""An API endpoint protected by django-oauth-toolkit, plus token helper commands."""

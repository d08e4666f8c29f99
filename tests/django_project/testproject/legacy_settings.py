"""Settings for migrating with an old Django (2.2, 3.2) and a django-oauth-toolkit of its era.

Used by tests/support/legacy.py (``DJANGO_SETTINGS_MODULE=testproject.legacy_settings``)
with the interpreter of a legacy virtualenv, to build a database the way a site
created years ago has it (``serial`` ids on PostgreSQL before Django 4.1), that
today's project (``testproject.settings``) then upgrades. Only the apps that
existed then: no ``protected`` (its commands use today's DOT), no swapped
application model, no test apps, no ``DEFAULT_AUTO_FIELD`` (Django < 3.2 has
none; each model declares its own ids, as old DOT releases did).

The database comes from the same ``OAR_DB_*`` variables as ``settings.py``.
"""

import datetime

import django

from testproject.settings import DATABASES, SECRET_KEY  # noqa: F401 pylint: disable=unused-import

DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]
MIDDLEWARE = []
TEMPLATES = []

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False


if django.VERSION < (3, 1):
    # Django < 3.1 predates psycopg2 2.9 (the oldest psycopg2 with Python 3.11 wheels), which hands the
    # tzinfo factory a timedelta where 2.8 handed minutes: Django's check "offset != 0" then fails on every
    # timestamptz although the session is in UTC. The same check, accepting both spellings of "no offset".
    # Patched before the backend module imports the function, i.e. here, when the settings load.
    from django.db.backends.postgresql import utils as _pg_utils  # pylint: disable=ungrouped-imports

    def _utc_tzinfo_factory(offset):
        if offset not in (0, datetime.timedelta(0)):
            raise AssertionError("database connection isn't set to UTC")
        return _pg_utils.utc

    _pg_utils.utc_tzinfo_factory = _utc_tzinfo_factory

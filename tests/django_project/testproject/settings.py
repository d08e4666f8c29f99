"""Settings of the Django test project.

The database is chosen by environment variables:

``OAR_DB_ENGINE``
    ``mysql``, ``postgresql`` or ``sqlite`` (default ``sqlite``).
``OAR_DB_NAME``
    Database name, or the file path for SQLite.
``OAR_DB_HOST``, ``OAR_DB_PORT``, ``OAR_DB_USER``, ``OAR_DB_PASSWORD``
    Where and as whom to connect (ignored for SQLite).
``OAR_APPLICATION_MODEL``
    Optional, e.g. ``swapapp.MyApplication``: swaps django-oauth-toolkit's
    Application model (and installs the ``swapapp`` app).
``OAR_EXTRA_APPS``
    Optional, comma-separated test apps to install as well, e.g. ``library``
    (seed 003's Author/Article, used by tests/test_db_surrogate_pk.py). Unset,
    no extra app is installed and other tests' databases are unaffected.
``OAR_DEFAULT_AUTO_FIELD``
    Optional ``DEFAULT_AUTO_FIELD``: unset, ``django.db.models.BigAutoField``;
    ``unset``, not defined at all (Django's default, ``AutoField``); anything
    else, that dotted path. Decides the type of the ``shelf`` app's auto ``id``.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "oar-test-project-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

APPLICATION_MODEL = os.environ.get("OAR_APPLICATION_MODEL", "").strip()

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "protected",
]
if APPLICATION_MODEL:
    INSTALLED_APPS.insert(INSTALLED_APPS.index("oauth2_provider"), "swapapp")
    OAUTH2_PROVIDER_APPLICATION_MODEL = APPLICATION_MODEL
INSTALLED_APPS += [a.strip() for a in os.environ.get("OAR_EXTRA_APPS", "").split(",") if a.strip()]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "oauth2_provider.middleware.OAuth2TokenMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "oauth2_provider.backends.OAuth2Backend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "testproject.urls"
TEMPLATES = []

OAUTH2_PROVIDER = {
    "SCOPES": {"read": "Read scope", "write": "Write scope"},
}


def _database():
    engine = os.environ.get("OAR_DB_ENGINE", "sqlite").strip().lower()
    name = os.environ.get("OAR_DB_NAME", "")
    if engine == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(BASE_DIR / "db.sqlite3"),
        }
    server = {
        "NAME": name,
        "HOST": os.environ.get("OAR_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("OAR_DB_PORT", ""),
        "USER": os.environ.get("OAR_DB_USER", ""),
        "PASSWORD": os.environ.get("OAR_DB_PASSWORD", ""),
    }
    if engine == "mysql":
        # PyMySQL stands in for mysqlclient (no C build needed).
        import pymysql

        pymysql.install_as_MySQLdb()
        return {
            "ENGINE": "django.db.backends.mysql",
            **server,
            "OPTIONS": {
                "charset": "utf8mb4",
                "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            },
        }
    if engine == "postgresql":
        return {"ENGINE": "django.db.backends.postgresql", **server}
    raise ValueError(f"OAR_DB_ENGINE must be mysql, postgresql or sqlite, not {engine!r}")


DATABASES = {"default": _database()}

if os.environ.get("OAR_SHELF_SURROGATE"):
    # the shelf release whose Tag has a surrogate id (shelf/models.py)
    MIGRATION_MODULES = {"shelf": "shelf.migrations_surrogate"}

_default_auto_field = os.environ.get("OAR_DEFAULT_AUTO_FIELD", "").strip() or "django.db.models.BigAutoField"
if _default_auto_field != "unset":
    DEFAULT_AUTO_FIELD = _default_auto_field
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

"""Settings of the demo site. The database file comes from DEMO_DB (scripts/demo.sh sets it).

This is the release being deployed: it swaps the OAuth2 Application model to ``demoapp.DemoApplication``
(field report 001). ``DEMO_RELEASE=before-swap`` gives the settings of the release the site ran before, with
DOT's own Application model; demo/break_db.py builds the old database with it.
"""
import os

SECRET_KEY = "demo-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "oauth2_provider",
]
if os.environ.get("DEMO_RELEASE", "") != "before-swap":
    INSTALLED_APPS.append("demoapp")
    OAUTH2_PROVIDER_APPLICATION_MODEL = "demoapp.DemoApplication"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DEMO_DB"]}}
ROOT_URLCONF = "demosite.urls"

"""A custom OAuth2 Application model with one extra field.

Used with ``OAR_APPLICATION_MODEL=swapapp.MyApplication`` (see settings.py).
"""

from django.db import models
from oauth2_provider.models import AbstractApplication


class MyApplication(AbstractApplication):
    logo_url = models.CharField(max_length=200, blank=True, default="")

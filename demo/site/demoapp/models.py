"""The demo site's own OAuth2 Application model (field report 001).

The site started on DOT's ``oauth2_provider.Application``; this release swaps
``OAUTH2_PROVIDER_APPLICATION_MODEL`` to ``demoapp.DemoApplication``, which adds one column.
The database was migrated long before, so Django's migrate alone stops with InconsistentMigrationHistory;
``playbooks/repair_oauth.yml`` moves the applications over (swap_application_model) without losing one.
"""

from django.db import models
from oauth2_provider.models import AbstractApplication


class DemoApplication(AbstractApplication):
    support_email = models.CharField(max_length=254, blank=True, default="")

"""The ``shelf`` app's models (see the package docstring)."""

import os
import uuid

from django.conf import settings
from django.db import models
from oauth2_provider.settings import oauth2_settings


if os.environ.get("OAR_SHELF_SURROGATE"):
    class Tag(models.Model):
        """The next release: a surrogate ``id`` (typed by ``DEFAULT_AUTO_FIELD``), the name kept unique
        (migration ``0002_tag_surrogate_id`` of ``shelf.migrations_surrogate``)."""

        name = models.CharField(max_length=50, unique=True)

        def __str__(self):
            return self.name
else:
    class Tag(models.Model):
        """A natural primary key: the name."""

        name = models.CharField(max_length=50, primary_key=True)

        def __str__(self):
            return self.name


class Item(models.Model):
    """An auto ``id`` (no explicit field: ``DEFAULT_AUTO_FIELD`` decides its type)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    title = models.CharField(max_length=100)
    slug = models.CharField(max_length=100, db_index=True)
    edition = models.CharField(max_length=20, default="")
    code = models.CharField(max_length=20, default="")
    tags = models.ManyToManyField(Tag, related_name="items", blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="shelf_items")
    application = models.ForeignKey(oauth2_settings.APPLICATION_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="shelf_items")
    public = models.BooleanField(default=False)
    copies = models.PositiveIntegerField(default=1)

    class Meta:
        unique_together = [("title", "edition")]
        indexes = [models.Index(fields=["public", "copies"], name="shelf_item_public_copies")]
        constraints = [models.UniqueConstraint(fields=["owner", "code"], name="shelf_item_owner_code_uniq")]

    def __str__(self):
        return self.title

"""Models covering what a schema comparison must handle: a natural CharField
primary key, an auto ``id`` typed by ``DEFAULT_AUTO_FIELD`` (see
``OAR_DEFAULT_AUTO_FIELD`` in settings.py), an M2M, a UUID, foreign keys to the
user and to the (possibly swapped) OAuth2 Application model, named indexes and
constraints. Installed only with ``OAR_EXTRA_APPS=shelf``.
"""

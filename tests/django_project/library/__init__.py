"""A small app shaped like field report 003 (seed 003): ``Author`` whose primary key was its ``name``,
``Article`` with an M2M to it. Installed only with ``OAR_EXTRA_APPS=library`` (see settings.py).

Migration 0001 is the natural-key schema; 0002 declares the surrogate ``id`` that
``django_ops.oauth_repair.db_surrogate_pk`` builds on the live database (0002 is what ``makemigrations``
generates; it is recorded, never run, on a database the module has repaired).
"""

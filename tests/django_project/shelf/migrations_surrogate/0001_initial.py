# The same 0001 as shelf/migrations: the release with a surrogate Tag id starts from the same history.
from importlib import import_module

Migration = import_module("shelf.migrations.0001_initial").Migration

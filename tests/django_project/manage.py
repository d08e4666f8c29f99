#!/usr/bin/env python
"""Django's command-line utility for the test project.

The database comes from the OAR_DB_* environment variables; see
testproject/settings.py.
"""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

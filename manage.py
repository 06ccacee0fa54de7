#!/usr/bin/env python
import os
import sys


def main():
    if sys.version_info < (3, 12):  # noqa: UP036 - the check is for people on the wrong Python
        sys.exit(
            "This project needs Python >= 3.12 (Django 6). Use `make run`, which builds .venv."
        )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

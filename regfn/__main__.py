"""``python -m regfn``: the ``regfn`` command (see :mod:`regfn.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

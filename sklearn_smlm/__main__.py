"""Run the command line with ``python -m sklearn_smlm``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m selfalign`` = the ``selfalign`` command."""

from selfalign.cli import main

main()

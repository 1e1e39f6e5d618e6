"""``python -m wacanda``: the same as the ``wacanda`` command."""

from wacanda.cli import main

main()

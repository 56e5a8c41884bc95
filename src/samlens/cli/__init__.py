"""Command-line interface: ``samlens <command> ...``.

Each module in this package that defines ``COMMAND`` is a sub-command; it also
defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. New commands
are added by adding a module, so no central table has to be edited.
"""

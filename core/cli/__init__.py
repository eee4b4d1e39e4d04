"""The ``polybot`` command line. Each module in ``core.cli.commands`` registers its own commands."""

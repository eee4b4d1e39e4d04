"""The ``polybot`` command line. Each module in ``polybot.cli.commands`` registers its own commands."""

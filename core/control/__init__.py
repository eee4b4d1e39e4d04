"""The one door every face (Telegram, CLI, demo) goes through: :mod:`core.control.facade` holds
:class:`~core.control.facade.Control`, :mod:`core.control.types` the result objects it returns,
:mod:`core.control.requests` the CLI's disarm/kill requests through the database.

Kept empty on purpose: importing the result types must not import the engine behind the facade."""

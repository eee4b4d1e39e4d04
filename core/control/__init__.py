"""The one door every face (Telegram, CLI, demo) goes through.

- :mod:`core.control.facade`: :class:`~core.control.facade.Control`, over the running service's
  :class:`~core.control.facade.Runtime` (in-process) or over its database (a CLI process);
- :mod:`core.control.types`: the result objects it returns, rendered alike by every face;
- :mod:`core.control.health`: what "healthy" means, one definition for both transports;
- :mod:`core.control.audit`: the one writer of command_audit rows;
- :mod:`core.control.stored` and :mod:`core.control.requests`: the via-database transport
  (reads, and disarm/kill as control requests a running service claims);
- :mod:`core.control.configured`: preflight and the dry-run order from a configuration file;
- :mod:`core.control.views`, :mod:`core.control.orders`: the running service's read side and
  manual orders; :mod:`core.control.frontend`: what a chat front end needs from its host.

Kept empty on purpose: importing the result types must not import the engine behind the facade."""

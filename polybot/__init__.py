"""Polybot's command-line face: the ``polybot`` CLI and the offline demo. Below it sit ``bot/`` (the
Telegram face) and ``core/`` (everything the faces drive), which never imports this package."""

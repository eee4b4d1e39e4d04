"""What a chat front end (the Telegram bot) needs from the process that hosts it.

The bot lives above core and may not import the service; the service may not import the bot.
The service satisfies :class:`FrontEndHost` as it is (its ``control``, ``bus``, ``settings``,
``opts`` and ``startup_alerts``), and hands itself to the front end factory it was given
(``ServiceOptions.frontend``, e.g. ``bot.app.start_telegram``). Only what is named here is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.control.facade import Control
    from core.events import Alert, EventBus


class SecretText(Protocol):
    def get_secret_value(self) -> str: ...


class TelegramUserEntry(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def role(self) -> object:
        """Its ``str()`` is the role's name: viewer, operator or admin."""
        ...


class TelegramOptions(Protocol):
    """The ``[telegram]`` settings the bot reads."""

    @property
    def token(self) -> SecretText | None: ...

    @property
    def base_url(self) -> str: ...

    @property
    def users(self) -> Sequence[TelegramUserEntry]: ...

    @property
    def alert_chats(self) -> Sequence[int]: ...

    @property
    def confirm_ttl_s(self) -> float: ...

    @property
    def commands_per_minute(self) -> int: ...


class HostSettings(Protocol):
    @property
    def telegram(self) -> TelegramOptions: ...


class HostOptions(Protocol):
    @property
    def bot_request(self) -> object:
        """A Telegram ``BaseRequest`` double (offline bot: no polling), or None for the real Bot API."""
        ...

    @property
    def bot_clock(self) -> Callable[[], float] | None:
        """Drives confirmation expiry, the per-user rate limit and alert cooldowns (None: wall time)."""
        ...


class FrontEndHost(Protocol):
    """The running service as a front end sees it."""

    @property
    def control(self) -> Control: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def settings(self) -> HostSettings: ...

    @property
    def opts(self) -> HostOptions: ...

    @property
    def startup_alerts(self) -> Sequence[Alert]:
        """Alerts published before the front end started (it replays them to the admins)."""
        ...

"""One request handler served over real HTTP by aiohttp, for the local exchange doubles.

A double writes a handler from :class:`HttpRequest` to :class:`HttpResponse` (its routes, rules
and faults stay framework-free); :class:`MiniHttpServer` serves it on aiohttp, which does the
HTTP/1.1 (keep-alive, pipelining, chunked bodies, malformed requests answered 400). A handler
may return :data:`DROP`: the connection then closes with no answer (a connection lost after
the request was processed). Websocket routes (``/ws/user`` of the CLOB double) share the app,
and the same app can listen on more than one port.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_URL_BYTES = 16 * 1024  # aiohttp's default (8,190) is less than 101 condition ids in a query string
SHUTDOWN_S = 2.0  # in-flight handlers get this long once the listeners are closed


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str  # path and query as sent
    path: str  # decoded, without the query
    query: dict[str, list[str]]  # blank values kept
    headers: dict[str, str]  # lower-case names
    body: bytes
    path_args: tuple[str, ...] = ()  # groups captured by the route pattern

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> object:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass(slots=True)
class HttpResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: object, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return cls(status, data, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def error(cls, status: int, message: str, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return cls.json({"error": message}, status, headers)


DROP = HttpResponse(status=-1)
"""Returned by a handler: close the connection without sending a response."""

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]
RouteSpec = tuple[str, str, Handler]  # method, path pattern (a full-match regex), handler
WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def to_request(request: web.Request) -> HttpRequest:
    """The framework-free view of an aiohttp request (the body read in full)."""
    body = await request.read()
    return HttpRequest(
        method=request.method.upper(),
        target=request.raw_path,
        path=request.path or "/",
        query=parse_qs(urlsplit(request.raw_path).query, keep_blank_values=True),  # from the bytes as sent
        headers={name.lower(): value for name, value in request.headers.items()},
        body=body,
    )


class MiniHttpServer:
    """Serve ``handler`` for every method and path on ``host``:``port`` (and ``extra_ports``)."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        websocket_routes: Mapping[str, WebHandler] | None = None,
        extra_ports: Sequence[int] = (),
    ) -> None:
        self._handler = handler
        self.host = host
        self._ports = [port, *extra_ports]
        self._websocket_routes = dict(websocket_routes or {})
        self._runner: web.AppRunner | None = None
        self._sites: list[web.TCPSite] = []

    @property
    def port(self) -> int:
        """The first listening port (the requested one before :meth:`start`)."""
        return self.ports[0]

    @property
    def ports(self) -> list[int]:
        if not self._sites:
            return list(self._ports)
        return [site.port for site in self._sites]

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for path, ws_handler in self._websocket_routes.items():
            app.router.add_get(path, ws_handler)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S, max_line_size=MAX_URL_BYTES)
        await runner.setup()
        self._runner = runner
        try:
            for port in dict.fromkeys(self._ports):  # one listener per distinct port
                site = web.TCPSite(runner, self.host, port)
                await site.start()
                self._sites.append(site)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            self._ports = self.ports  # a restart binds the same ports
            self._sites.clear()
            await runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        try:
            req = await to_request(request)
        except web.HTTPRequestEntityTooLarge:
            return as_web(HttpResponse.error(413, "body too large"))
        response = await self._handler(req)
        if response is DROP:
            return drop(request)
        return as_web(response)


def as_web(response: HttpResponse) -> web.Response:
    return web.Response(status=response.status, body=response.body, headers=response.headers)


def drop(request: web.Request) -> web.StreamResponse:
    """Close the connection with no answer; aiohttp then finds the transport closed and treats
    the unsent response as a client that went away (no error logged)."""
    transport = request.transport
    if transport is not None:
        transport.close()
    return web.Response(status=204)


async def sleep_until(stopped: asyncio.Event, seconds: float | None) -> None:
    """Sleep ``seconds`` (None = for ever), or until ``stopped`` is set: a held answer never
    outlives its double."""
    try:
        await asyncio.wait_for(stopped.wait(), seconds)
    except TimeoutError:
        pass

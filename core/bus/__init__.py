"""The market-data bus: feed workers publish normalized book events on NATS JetStream, traders read them.

Schema (:mod:`core.bus.messages`, MessagePack via msgspec; :func:`~core.bus.messages.encode` /
:func:`~core.bus.messages.decode`, the kind is the ``k`` tag):

=========  ====================================================================================
kind       fields besides ``condition``, ``asset``, ``epoch``, ``seq``, ``ts_ms``, ``recv_ns``, ``pub_ns``
=========  ====================================================================================
snapshot   ``bids``/``asks`` best first as (price_units, size_units); ``tick_size`` (str);
           ``status`` (the worker's book status after it); ``hash``; ``source`` (ws/rest/request)
delta      ``levels``: [side, price, size, best_bid, best_ask] of each accepted entry, venue strings
trade      ``side``, ``price_units``, ``size_units``, ``fee_rate_bps``, ``transaction_hash``
best       ``best_bid_units``, ``best_ask_units`` (None: that side empty)
tick       ``old_tick``, ``new_tick`` (str): the book waits for a fresh snapshot
status     ``old``, ``new``, ``reason`` (book status values of :class:`core.types.BookStatus`)
resolved   ``asset_ids``, ``winning_asset_id``, ``winning_outcome`` (once on each asset of the market)
=========  ====================================================================================

Units are 10^-6 (:mod:`core.feed.numbers`); nothing is a float. ``seq`` is per asset and per
``epoch``, 1, 2, 3 ... over every kind (0 before anything was published); ``epoch`` is the
revision of the shard lease the publishing worker holds, so it grows on every takeover and a reader
ignores a smaller one. ``recv_ns`` is the worker's receive time, ``pub_ns`` its publish time.

Subjects (:mod:`core.bus.subjects`, prefix ``polybot`` by default): ``polybot.md.<condition>.<asset>.<kind>``
in the stream (``[bus] stream``, bounded by ``max_age_s`` and ``max_bytes``); snapshot requests
``polybot.snap.<asset>`` (:class:`~core.bus.messages.SnapshotRequest` ->
:class:`~core.bus.messages.SnapshotReply`, whose snapshot's ``seq`` is the last published: apply
the messages after it); heartbeats ``polybot.hb.<shard>``; shard leases under ``feed.<shard>`` in the
KV bucket ``[bus] lease_bucket`` (:class:`~core.bus.messages.Lease`). Shards: :mod:`core.bus.shard`.
A heartbeat (:class:`~core.bus.messages.Heartbeat`) also carries the last ``seq`` of every asset
that published since the previous one, so a reader sees a lost *last* message on a quiet market.

Who does what: a feed worker (:mod:`core.app.feed_worker`, ``polybot feed-worker``) holds a shard's
lease (:mod:`core.bus.lease`) and publishes its pipeline's events through
:class:`~core.bus.publish.MdPublisher`; a service with ``feed.source = "bus"`` reads them with
:class:`~core.bus.reader.BusFeed`, whose continuity rules are :class:`~core.bus.sync.BookSync`
(in sequence and epoch, or ``awaiting_snapshot`` and a snapshot request) and which hands its
pipeline venue-shaped frames (:mod:`core.bus.to_wire`), so its books follow the same integrity rules.

Metrics (issue 20 point 5): a process on the bus counts into one
:class:`core.metrics.bus_stats.BusStats` (``polybot_bus_*``: ``on_published(kind, nbytes, lag_s)``
-> ``polybot_bus_published_total`` / ``_published_bytes_total`` / ``_worker_lag_seconds``,
``on_publish_error``, ``set_shard(shard, active)`` -> ``polybot_bus_shard_active``,
``snapshots_served``; a trader ``on_received(kind, lag_s)``, ``on_gap()`` ->
``polybot_bus_sequence_gaps_total``, ``resnapshots``; ``set_stream`` / ``set_consumer`` for the
JetStream state), binds it with ``Metrics.bind(market_bus=stats)`` and serves ``/metrics`` with
``serve_metrics(host, port, role="feed-worker", instance=settings.metrics.instance)``. ``core.bus``
sits below ``core.metrics``: its components take the stats through the Protocols of
:mod:`core.bus.meter`), ``core.app`` passes the BusStats. The recorder
(:mod:`core.bus.recorder`, ``polybot recorder``) stores the stream in the feed tables.
"""

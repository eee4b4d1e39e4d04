"""The application layer: the policies that join the components into a trading service.

Each module holds one policy and receives what it needs at construction: trading wiring (feed
events to the strategy runners, their decisions to the engine), re-seeding of inconsistent books,
alert policy, control requests from the database and the scheduled jobs. ``core.service`` builds
them and starts them; the faces (``core.control`` and above) never see them.
"""

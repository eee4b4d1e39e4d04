"""Polybot core: everything but the Telegram front end."""

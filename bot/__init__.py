"""Polybot Telegram front end."""

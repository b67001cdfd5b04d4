"""Notification delivery: the neutral message, its rendering, the outbox writer and the dispatcher.

Nothing here imports discord: `bot/discord_delivery.py` adapts `Delivery` to discord.py.
"""

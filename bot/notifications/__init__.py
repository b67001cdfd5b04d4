"""Notification delivery: the neutral message, its rendering, the Delivery protocol and the dispatcher.

The outbox writer lives with the services (`bot/services/notification_outbox.py`): it runs in their transactions.

Nothing here imports discord: `bot/discord_delivery.py` adapts `Delivery` to discord.py.
"""

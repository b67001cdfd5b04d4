"""The aiohttp side server: REST API, OpenAPI document, OAuth callback and health endpoint."""

from bot.api.server import ApiServer, create_api_app

__all__ = ["ApiServer", "create_api_app"]

"""`python -m tests.e2e.launcher [run.py arguments]`: the real `run.main()`, with discord.py talking to a fake
Discord on loopback instead of discord.com.

`E2E_DISCORD_API` is the fake's REST base (`http://127.0.0.1:PORT/api/v10`) and `E2E_DISCORD_GATEWAY` its
websocket URL. Only these two addresses of discord.py change, in this process; the product code is untouched.
(A non-sharded discord.py client connects to `DiscordWebSocket.DEFAULT_GATEWAY` without asking
`GET /gateway/bot`, so the gateway address is set here too.)
"""

from __future__ import annotations

import os
import sys

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route


def main() -> int:
    Route.BASE = os.environ["E2E_DISCORD_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["E2E_DISCORD_GATEWAY"])
    import run

    return run.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

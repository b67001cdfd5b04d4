"""Startline entry point.

    python run.py [serve] [--no-discord]        the bot, the REST API and the jobs in one process
    python run.py db upgrade                    apply database migrations
    python run.py token create --guild ID --name NAME --scope read|manage
                                                print a new API token once (stored hashed)
    python run.py sync [--guild ID ...] [--global]
                                                publish the slash commands (default: discord.dev_guild_ids)

Every command takes `--config PATH` (default: config.toml beside this file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from bot.settings import ConfigError, Settings, load_settings

log = logging.getLogger("startline")


def _configure_logging(settings: Settings) -> None:
    from bot.logs import configure_logging

    configure_logging(settings.logging)


def _install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not available on Windows
            loop.add_signal_handler(signum, stop.set)


async def _serve_without_discord(settings: Settings) -> int:
    from bot.app import Application, freeze_startup_objects

    app = Application(settings)
    stop = asyncio.Event()
    _install_stop_signals(stop)
    await app.start()
    freeze_startup_objects()
    print(f"Startline is running without Discord; API on port {app.api.port}. Stop with Ctrl+C.", flush=True)
    try:
        await stop.wait()
    finally:
        await app.stop()
    return 0


async def _serve_with_discord(settings: Settings) -> int:
    import discord

    from bot.app import Application, freeze_startup_objects
    from bot.discord_bot import create_bot

    app = Application(settings)
    bot = create_bot(app)
    freeze_startup_objects()
    stop = asyncio.Event()
    _install_stop_signals(stop)
    token = settings.discord.token.get_secret_value()  # type: ignore[union-attr]
    async with bot:
        runner = asyncio.create_task(bot.start(token))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            await bot.close()
        stopper.cancel()
        refused = None
        try:
            await runner
        except asyncio.CancelledError:
            pass
        except discord.LoginFailure:
            refused = "Discord refused the token (STARTLINE_DISCORD__TOKEN)"
        except discord.PrivilegedIntentsRequired:
            refused = (
                "Discord refused the Server Members intent: switch on Bot → Privileged Gateway Intents → "
                "Server Members Intent for this application in the Discord developer portal"
            )
    if refused:  # after the application stopped
        print(f"error: {refused}", file=sys.stderr)
        return 2
    return 0


def serve(settings: Settings, *, no_discord: bool) -> int:
    from db.session import DatabaseInUse, hold_sqlite_for_this_process

    try:
        lock = hold_sqlite_for_this_process(settings.database.url)  # noqa: F841 - held while the process runs
    except DatabaseInUse as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if not no_discord and not settings.has_discord_token:
        print(
            "No Discord token is configured (set STARTLINE_DISCORD__TOKEN): running with --no-discord, "
            "so the REST API and the jobs work but there are no slash commands or DMs.",
            file=sys.stderr,
            flush=True,
        )
        no_discord = True
    return asyncio.run(_serve_without_discord(settings) if no_discord else _serve_with_discord(settings))


async def _db_upgrade(settings: Settings) -> int:
    from db import migrate
    from db.session import Database

    database = Database.from_settings(settings.database)
    try:
        await migrate.upgrade(database)
        print(f"database is at revision {await migrate.current_revision(database)}")
    finally:
        await database.dispose()
    return 0


async def _token_create(settings: Settings, guild_id: int, name: str, scope: str) -> int:
    from bot.actors import Actor
    from bot.errors import DomainError
    from bot.services.tokens import TokenService
    from db import migrate
    from db.session import Database

    database = Database.from_settings(settings.database)
    try:
        await migrate.upgrade(database)
        try:
            issued = await TokenService(database).create(guild_id, Actor.system("cli"), name=name, scope=scope)
        except DomainError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
    finally:
        await database.dispose()
    print(issued.secret)
    print(
        f"token #{issued.token.id} {issued.token.name!r} ({issued.token.scope.value}) for guild {guild_id}; "
        "it is shown only this once.",
        file=sys.stderr,
    )
    return 0


async def _sync(settings: Settings, guild_ids: list[int], include_global: bool) -> int:
    import discord

    from bot.app import Application
    from bot.discord_bot import StartlineBot
    from cogs._common.sync import sync_commands

    app = Application(settings, run_migrations=False, start_jobs=False)
    bot = StartlineBot(app, start_app=False)  # loads the cogs to know the commands; no API, no jobs
    token = settings.discord.token.get_secret_value()  # type: ignore[union-attr]
    try:
        async with bot:
            await bot.login(token)
            report = await sync_commands(bot.tree, guild_ids=guild_ids, include_global=include_global)
    except discord.LoginFailure:
        print("error: Discord refused the token (STARTLINE_DISCORD__TOKEN)", file=sys.stderr)
        return 2
    finally:
        await app.db.dispose()
    for line in report:
        print(line)
    return 0


def sync(settings: Settings, guild_ids: list[int], include_global: bool) -> int:
    if not settings.has_discord_token:
        print("error: sync needs the Discord token; set STARTLINE_DISCORD__TOKEN", file=sys.stderr)
        return 2
    guild_ids = guild_ids or ([] if include_global else list(settings.discord.dev_guild_ids))
    if not guild_ids and not include_global:
        print(
            "error: say where to publish: --guild ID (repeatable, instant) or --global (every server, up to an hour),"
            " or set discord.dev_guild_ids",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_sync(settings, guild_ids, include_global))


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < number < 2**63:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Discord id")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Startline: live races for async tournaments.")
    parser.add_argument("--config", metavar="PATH", help="configuration file (default: config.toml)")
    parser.add_argument("--no-discord", action="store_true", help="run the API and the jobs without the gateway")
    commands = parser.add_subparsers(dest="command")

    serve_cmd = commands.add_parser("serve", help="run the bot (default)")
    serve_cmd.add_argument("--no-discord", action="store_true", dest="serve_no_discord")

    db_cmd = commands.add_parser("db", help="database maintenance")
    db_cmd.add_argument("action", choices=["upgrade"])

    token_cmd = commands.add_parser("token", help="API tokens")
    token_cmd.add_argument("action", choices=["create"])
    token_cmd.add_argument("--guild", type=_positive_int, required=True, help="Discord guild (server) id")
    token_cmd.add_argument("--name", required=True)
    token_cmd.add_argument("--scope", choices=["read", "manage"], default="read")

    sync_cmd = commands.add_parser("sync", help="publish the slash commands to Discord (never done at start)")
    sync_cmd.add_argument(
        "--guild", type=_positive_int, action="append", default=[], help="a development server; repeatable"
    )
    sync_cmd.add_argument("--global", dest="sync_global", action="store_true", help="every server")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    _configure_logging(settings)
    if args.command == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.command == "token":
        return asyncio.run(_token_create(settings, args.guild, args.name, args.scope))
    if args.command == "sync":
        return sync(settings, args.guild, args.sync_global)
    no_discord = args.no_discord or getattr(args, "serve_no_discord", False)
    return serve(settings, no_discord=no_discord)


if __name__ == "__main__":
    sys.exit(main())

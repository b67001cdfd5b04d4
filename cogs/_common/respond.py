"""Answering an interaction, and turning any error into the sentence the user sees.

One error model for commands, buttons and confirmations (Red's `RedTree` style): a domain error shows its own
message, a failed check its reason, and anything unexpected a short generic message while the traceback goes to
the log. Errors are always ephemeral.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.errors import DomainError

log = logging.getLogger(__name__)

GENERIC_FAILURE = "Something went wrong on my side and it has been logged. Please try again in a moment."


async def respond(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    ephemeral: bool = True,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    file: discord.File | None = None,
) -> None:
    """Send the answer: the first response, or a followup once the interaction was answered or deferred."""
    kwargs: dict = {"ephemeral": ephemeral}
    if embed is not None:
        kwargs["embed"] = embed
    if view is not None:
        kwargs["view"] = view
    if file is not None:
        kwargs["file"] = file
    if interaction.response.is_done():
        await interaction.followup.send(content, **kwargs)
    else:
        await interaction.response.send_message(content, **kwargs)


async def think(interaction: discord.Interaction, *, ephemeral: bool = True) -> None:
    """Defer before slow work (RaceTime.gg calls): Discord wants an answer within three seconds."""
    if not interaction.response.is_done():
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)


def sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?`" else text + "."


def _unwrap(error: BaseException) -> BaseException:
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    if isinstance(error, app_commands.TransformerError) and error.__cause__ is not None:
        return error.__cause__
    return error


def _domain_text(error: DomainError) -> str:
    text = sentence(error.message)
    if error.example is not None and error.field:
        option = error.field.rsplit(".", 1)[-1]  # `room.start_delay` is the option `start_delay`
        example = str(error.example).lower() if isinstance(error.example, bool) else error.example
        text += f" For example `{option}: {example}`."
    return text


def error_text(error: BaseException, interaction: discord.Interaction | None = None) -> str:
    """What to tell the user about `error`; unexpected errors are logged here with their traceback."""
    original = _unwrap(error)
    if isinstance(original, DomainError):
        return _domain_text(original)
    if isinstance(original, app_commands.NoPrivateMessage):
        return "Startline's commands work in a server, not in direct messages."
    if isinstance(original, app_commands.MissingPermissions):
        missing = ", ".join(
            p.replace("_", " ").replace("guild", "server").title() for p in original.missing_permissions
        )
        return f"You need the {missing} permission to do that."
    if isinstance(original, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {original.retry_after:.0f} seconds."
    if isinstance(original, app_commands.CheckFailure):
        return str(original) or "You cannot use this command here."
    if isinstance(original, app_commands.TransformerError):
        return f"`{original.value}` is not a valid {original.type.name}."
    if isinstance(original, (app_commands.CommandNotFound, app_commands.CommandSignatureMismatch)):
        return "This command changed since Discord last loaded it; wait a minute and try again."
    command = interaction.command.qualified_name if interaction and interaction.command else "?"
    log.error("unexpected error in %s", command, exc_info=original)
    return GENERIC_FAILURE


async def report_error(interaction: discord.Interaction, error: BaseException) -> None:
    """Tell the user, ephemerally; an expired or unknown interaction is only logged."""
    text = error_text(error, interaction)
    if interaction.type is discord.InteractionType.autocomplete:
        return
    try:
        await respond(interaction, text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not report an error to the user: %s", exc)

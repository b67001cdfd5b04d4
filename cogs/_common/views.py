"""Buttons: a paginator and a confirmation, both answering only the user who ran the command."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

import discord

from cogs._common.respond import error_text, report_error, respond

NOT_YOURS = "These buttons belong to the person who ran the command; run it yourself to get your own."


class OwnedView(discord.ui.View):
    """A view only its owner may press; it switches its buttons off when it times out."""

    def __init__(self, owner_id: int, *, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.origin: discord.Interaction | None = None  # the interaction whose response carries the view

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        return False

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await report_error(interaction, error)

    def disable_all(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button | discord.ui.Select):
                item.disabled = True

    async def on_timeout(self) -> None:
        self.disable_all()
        if self.origin is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.origin.edit_original_response(view=self)


class Paginator(OwnedView):
    """Embeds shown one at a time: first, previous, the page number (press it to go to a page), next, last, and
    "My page" when the caller's own line is on one of the pages (`my_page`, counted from 0)."""

    def __init__(
        self, owner_id: int, pages: Sequence[discord.Embed], *, timeout: float = 180.0, my_page: int | None = None
    ) -> None:
        super().__init__(owner_id, timeout=timeout)
        if not pages:
            raise ValueError("a paginator needs at least one page")
        self.pages = list(pages)
        self.index = 0
        self.my_page = my_page
        if my_page is None:
            self.remove_item(self.mine)
        self._sync_buttons()

    async def start(self, interaction: discord.Interaction, *, ephemeral: bool = True) -> None:
        if len(self.pages) == 1:  # nothing to page through: no buttons
            self.stop()
            await respond(interaction, embed=self.pages[0], ephemeral=ephemeral)
            return
        self.origin = interaction
        await respond(interaction, embed=self.pages[0], view=self, ephemeral=ephemeral)

    def _sync_buttons(self) -> None:
        last = len(self.pages) - 1
        self.first_page.disabled = self.previous_page.disabled = self.index == 0
        self.next_page.disabled = self.last_page.disabled = self.index >= last
        self.position.label = f"{self.index + 1}/{len(self.pages)}"
        self.mine.disabled = self.index == self.my_page

    async def show(self, interaction: discord.Interaction, index: int) -> None:
        self.index = max(0, min(index, len(self.pages) - 1))
        self._sync_buttons()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    @discord.ui.button(label="⏮", style=discord.ButtonStyle.secondary)
    async def first_page(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self.show(interaction, 0)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary)
    async def previous_page(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self.show(interaction, self.index - 1)

    @discord.ui.button(label="1/1", style=discord.ButtonStyle.primary)
    async def position(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await interaction.response.send_modal(GoToPage(self))

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary)
    async def next_page(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self.show(interaction, self.index + 1)

    @discord.ui.button(label="⏭", style=discord.ButtonStyle.secondary)
    async def last_page(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self.show(interaction, len(self.pages) - 1)

    @discord.ui.button(label="My page", style=discord.ButtonStyle.success, row=1)
    async def mine(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self.show(interaction, self.my_page or 0)


class GoToPage(discord.ui.Modal):
    """Asks for a page number; anything else gets a private message and the page stays."""

    page: discord.ui.TextInput = discord.ui.TextInput(label="Page", custom_id="page", max_length=6)

    def __init__(self, paginator: Paginator) -> None:
        super().__init__(title="Go to page", timeout=120)
        self.paginator = paginator
        self.page.placeholder = f"1 to {len(paginator.pages)}"

    async def on_submit(self, interaction: discord.Interaction) -> None:
        text = self.page.value.strip()
        total = len(self.paginator.pages)
        if not text.isdigit() or not 1 <= int(text) <= total:
            await respond(interaction, f"Give a page number from 1 to {total}.", ephemeral=True)
            return
        await self.paginator.show(interaction, int(text) - 1)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await report_error(interaction, error)


Action = Callable[[discord.Interaction], Awaitable[str]]


class ConfirmView(OwnedView):
    """Asks before a destructive action; `action` returns the sentence that replaces the question."""

    def __init__(self, owner_id: int, action: Action, *, confirm_label: str, timeout: float = 60.0) -> None:
        super().__init__(owner_id, timeout=timeout)
        self.action = action
        self.confirm.label = confirm_label
        self.outcome: str | None = None

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        self.origin = interaction
        await respond(interaction, question, view=self, ephemeral=True)

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        # The action may call RaceTime.gg: acknowledge the click first, then put the outcome in place.
        await interaction.response.edit_message(content="Working on it…", view=None)
        try:
            self.outcome = await self.action(interaction)
        except Exception as error:
            self.outcome = error_text(error, interaction)
        await interaction.edit_original_response(content=self.outcome)

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary)
    async def keep(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        self.outcome = "Nothing changed."
        await interaction.response.edit_message(content=self.outcome, view=None)

    async def on_timeout(self) -> None:
        self.outcome = "No answer, so nothing changed."
        if self.origin is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.origin.edit_original_response(content=self.outcome, view=None)

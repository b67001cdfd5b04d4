"""Seasons: tournaments of a guild whose leaderboards combine into one.

A player's season score is the sum of their tournament scores (`sum`), or of their best N of them (`best`,
`best_of` = N): a tournament a player did not play counts as nothing. Ranks and ties follow the tournament
leaderboard exactly (`scoring.ranked`): equal scores share a rank, then by name, then by player id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import (
    Keyset,
    Page,
    check_int,
    check_unique_name,
    clean_name,
    clean_text,
)
from bot.services.scoring import leaderboard_in, ranked
from bot.services.tournaments import tournament_or_404
from db.models import Season, SeasonRule, SeasonTournament, Tournament
from db.session import Database

MAX_TOURNAMENTS = 100


@dataclass
class SeasonView:
    season: Season
    tournaments: list[Tournament]


@dataclass(frozen=True)
class SeasonEntry:
    rank: int
    player_id: int
    discord_user_id: int
    display_name: str
    score: float
    # Per tournament id, the player's score there; `counted` are the ones the rule kept.
    tournament_scores: dict[int, float] = field(default_factory=dict)
    counted: tuple[int, ...] = ()


@dataclass(frozen=True)
class SeasonLeaderboard:
    season: Season
    tournaments: list[Tournament]
    entries: list[SeasonEntry]


async def season_or_404(session: AsyncSession, guild_id: int, season_id: int) -> Season:
    season = await session.get(Season, season_id)
    if season is None or season.guild_id != guild_id:
        raise NotFound(f"season {season_id} not found", field="season_id")
    return season


def _rule(rule: str | SeasonRule | None, best_of: int | None) -> tuple[SeasonRule, int | None]:
    try:
        chosen = SeasonRule(rule or SeasonRule.SUM)
    except ValueError:
        raise ValidationFailed("rule must be sum or best", field="rule") from None
    if chosen is SeasonRule.BEST:
        if best_of is None:
            raise ValidationFailed("the best rule needs best_of: how many tournaments count", field="best_of")
        return chosen, check_int(best_of, "best_of", 1, MAX_TOURNAMENTS)
    return chosen, None


class SeasonService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def _view(self, session: AsyncSession, season: Season) -> SeasonView:
        tournaments = (
            await session.scalars(
                select(Tournament)
                .join(SeasonTournament, SeasonTournament.tournament_id == Tournament.id)
                .where(SeasonTournament.season_id == season.id)
                .order_by(Tournament.id)
            )
        ).all()
        return SeasonView(season, list(tournaments))

    async def _set_tournaments(
        self, session: AsyncSession, guild_id: int, season: Season, tournament_ids: list[int]
    ) -> None:
        if len(tournament_ids) > MAX_TOURNAMENTS:
            raise ValidationFailed(f"a season holds at most {MAX_TOURNAMENTS} tournaments", field="tournament_ids")
        for tournament_id in tournament_ids:
            await tournament_or_404(session, guild_id, tournament_id)
        await session.execute(delete(SeasonTournament).where(SeasonTournament.season_id == season.id))
        session.add_all(
            SeasonTournament(season_id=season.id, tournament_id=tid) for tid in dict.fromkeys(tournament_ids)
        )
        await session.flush()

    async def create(
        self,
        guild_id: int,
        actor: Actor,
        *,
        name: str,
        description: str = "",
        rule: str = "sum",
        best_of: int | None = None,
        tournament_ids: list[int] | None = None,
    ) -> SeasonView:
        """Create a season of the guild over its tournaments (validated, audited)."""
        name = clean_name(name, "name")
        description = clean_text(description, "description")
        chosen, best_of = _rule(rule, best_of)
        async with self.db.transaction() as session:
            await check_unique_name(session, Season, Season.guild_id, guild_id, name, "season")
            season = Season(guild_id=guild_id, name=name, description=description, rule=chosen, best_of=best_of)
            session.add(season)
            await session.flush()
            await self._set_tournaments(session, guild_id, season, list(tournament_ids or []))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="season.create",
                target_type="season",
                target_id=season.id,
                details={"name": name, "rule": chosen.value, "best_of": best_of, "tournament_ids": tournament_ids},
            )
            return await self._view(session, season)

    async def update(self, guild_id: int, season_id: int, actor: Actor, **changes) -> SeasonView:
        """Change a season's name, description, rule, best-of or tournaments (audited)."""
        allowed = {"name", "description", "rule", "best_of", "tournament_ids"}
        unknown = set(changes) - allowed
        if unknown:
            key = sorted(unknown)[0]
            raise ValidationFailed(f"{key} cannot be changed", field=key)
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        async with self.db.transaction() as session:
            season = await season_or_404(session, guild_id, season_id)
            before = {"name": season.name, "rule": season.rule.value, "best_of": season.best_of}
            if changes.get("name") is not None:
                season.name = clean_name(changes["name"], "name")
                await check_unique_name(
                    session, Season, Season.guild_id, guild_id, season.name, "season", own_id=season.id
                )
            if changes.get("description") is not None:
                season.description = clean_text(changes["description"], "description")
            if "rule" in changes or "best_of" in changes:
                season.rule, season.best_of = _rule(
                    changes.get("rule") or season.rule, changes.get("best_of", season.best_of)
                )
            if changes.get("tournament_ids") is not None:
                await self._set_tournaments(session, guild_id, season, list(changes["tournament_ids"]))
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="season.edit",
                target_type="season",
                target_id=season.id,
                details={"before": before, "changes": changes},
            )
            return await self._view(session, season)

    async def add_tournament(self, guild_id: int, season_id: int, tournament_id: int, actor: Actor) -> SeasonView:
        """Add one of the guild's tournaments to a season."""
        async with self.db.read() as session:
            current = [
                t.id for t in (await self._view(session, await season_or_404(session, guild_id, season_id))).tournaments
            ]
        if tournament_id in current:
            raise Conflict(f"tournament {tournament_id} is already in this season", field="tournament_id")
        return await self.update(guild_id, season_id, actor, tournament_ids=[*current, tournament_id])

    async def remove_tournament(self, guild_id: int, season_id: int, tournament_id: int, actor: Actor) -> SeasonView:
        """Remove a tournament from a season."""
        async with self.db.read() as session:
            current = [
                t.id for t in (await self._view(session, await season_or_404(session, guild_id, season_id))).tournaments
            ]
        if tournament_id not in current:
            raise NotFound(f"tournament {tournament_id} is not in this season", field="tournament_id")
        return await self.update(
            guild_id, season_id, actor, tournament_ids=[tid for tid in current if tid != tournament_id]
        )

    async def delete(self, guild_id: int, season_id: int, actor: Actor) -> None:
        """Delete the season; its tournaments and their results stay."""
        async with self.db.transaction() as session:
            season = await season_or_404(session, guild_id, season_id)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="season.delete",
                target_type="season",
                target_id=season.id,
                details={"name": season.name},
            )
            await session.execute(delete(SeasonTournament).where(SeasonTournament.season_id == season.id))
            await session.delete(season)

    async def get(self, guild_id: int, season_id: int) -> SeasonView:
        """The guild's season; NotFound otherwise."""
        async with self.db.read() as session:
            return await self._view(session, await season_or_404(session, guild_id, season_id))

    async def list(
        self, guild_id: int, *, limit: int | None = None, cursor: str | None = None, search: str | None = None
    ) -> Page[SeasonView]:
        """One page of the guild's seasons, optionally matching a search."""
        window = Keyset.of(limit, cursor)
        async with self.db.read() as session:
            query = select(Season).where(Season.guild_id == guild_id)
            if search:
                query = query.where(Season.name.ilike(f"%{search.strip()[:100]}%"))
            page = window.page(await session.scalars(window.select(query, Season.id)), lambda season: season.id)
            return Page([await self._view(session, season) for season in page.items], page.next_cursor)

    async def names_of_tournaments(self, guild_id: int, tournament_ids: list[int]) -> dict[int, list[str]]:
        """The seasons each tournament belongs to (for the calendar and the leaderboard embeds)."""
        async with self.db.read() as session:
            rows = (
                await session.execute(
                    select(SeasonTournament.tournament_id, Season.name)
                    .join(Season, Season.id == SeasonTournament.season_id)
                    .where(Season.guild_id == guild_id, SeasonTournament.tournament_id.in_(tournament_ids))
                    .order_by(Season.id)
                )
            ).all()
        names: dict[int, list[str]] = defaultdict(list)
        for tournament_id, name in rows:
            names[tournament_id].append(name)
        return dict(names)

    async def leaderboard(self, guild_id: int, season_id: int) -> SeasonLeaderboard:
        """The season's leaderboard over its tournaments, by its rule."""
        async with self.db.read() as session:
            view = await self._view(session, await season_or_404(session, guild_id, season_id))
            boards = [await leaderboard_in(session, guild_id, tournament) for tournament in view.tournaments]
        season = view.season
        scores: dict[int, dict[int, float]] = defaultdict(dict)
        people: dict[int, tuple[int, str]] = {}
        for board in boards:
            for entry in board.entries:
                scores[entry.player_id][board.tournament_id] = entry.score
                people[entry.player_id] = (entry.discord_user_id, entry.display_name)
        rows = []
        for player_id, per_tournament in scores.items():
            kept = sorted(per_tournament.items(), key=lambda item: (-item[1], item[0]))
            if season.rule is SeasonRule.BEST and season.best_of is not None:
                kept = kept[: season.best_of]
            total = sum(score for _, score in kept)
            rows.append((total, people[player_id][1], player_id, per_tournament, tuple(tid for tid, _ in kept)))
        entries = [
            SeasonEntry(rank, player_id, people[player_id][0], name, total, per_tournament, counted)
            for rank, (total, name, player_id, per_tournament, counted) in ranked(rows)
        ]
        return SeasonLeaderboard(season, view.tournaments, entries)

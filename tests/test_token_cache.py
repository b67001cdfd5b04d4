"""The API token lookup cache: a revoke through this process is seen at once, through another within the TTL."""

from __future__ import annotations

from sqlalchemy import event

from bot.services.tokens import TokenService
from tests.conftest import GUILD, MODERATOR


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count_statements(db) -> list[str]:
    seen: list[str] = []

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def _record(_conn, _cursor, statement, *_args) -> None:
        if "api_tokens" in statement:
            seen.append(statement)

    return seen


async def test_a_cached_token_needs_no_database_read(services) -> None:
    tokens = TokenService(services.db, cache_seconds=5, monotonic=Clock())
    issued = await services.tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    first = await tokens.authenticate(issued.secret)
    seen = count_statements(services.db)
    again = await tokens.authenticate(issued.secret)
    assert again == first and again is not None
    assert seen == []  # neither the lookup nor last_used_at (written at most once a minute)


async def test_a_revoke_in_this_process_is_seen_at_once(services) -> None:
    tokens = services.tokens
    assert tokens.cache_seconds > 0
    issued = await tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    token = await tokens.authenticate(issued.secret)
    assert token is not None and await tokens.authenticate(issued.secret) == token
    await tokens.revoke(GUILD, token.id, MODERATOR)
    assert await tokens.authenticate(issued.secret) is None


async def test_another_process_sees_a_revoke_within_the_cache_time(services) -> None:
    clock = Clock()
    other = TokenService(services.db, cache_seconds=5, monotonic=clock)  # a second process on the same database
    issued = await services.tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    token = await other.authenticate(issued.secret)
    assert token is not None
    await services.tokens.revoke(GUILD, token.id, MODERATOR)
    clock.now += 4
    assert await other.authenticate(issued.secret) == token  # the documented window
    clock.now += 1
    assert await other.authenticate(issued.secret) is None


async def test_a_lookup_that_read_before_a_revoke_committed_is_not_cached(services) -> None:
    tokens = services.tokens
    issued = await tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    generation = tokens._generation
    token = await tokens.authenticate(issued.secret)
    assert token is not None
    tokens.forget(token.id)  # a revoke committing while that lookup was between its read and caching it
    tokens._remember("digest-of-the-slow-lookup", token, generation, tokens._monotonic())
    assert tokens._cached("digest-of-the-slow-lookup") is None


async def test_unknown_secrets_are_not_cached_and_the_cache_is_bounded(services, monkeypatch) -> None:
    from bot.services import tokens as module

    monkeypatch.setattr(module, "TOKEN_CACHE_SIZE", 2)
    tokens = TokenService(services.db, cache_seconds=5, monotonic=Clock())
    for name in ("a", "b", "c"):
        issued = await services.tokens.create(GUILD, MODERATOR, name=name, scope="read")
        assert await tokens.authenticate(issued.secret) is not None
    assert await tokens.authenticate("slt_unknown") is None
    assert len(tokens._cache) == 2


async def test_cache_off_reads_every_time(services) -> None:
    tokens = TokenService(services.db, cache_seconds=0)
    issued = await services.tokens.create(GUILD, MODERATOR, name="ci", scope="read")
    await tokens.authenticate(issued.secret)
    seen = count_statements(services.db)
    await tokens.authenticate(issued.secret)
    assert len(seen) == 1

"""Bulk seeds: reading a CSV file or a list of URLs, and importing all of it or nothing, each bad line named."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.errors import NotFound, ValidationFailed
from bot.services.seed_import import (
    MAX_IMPORT_LINES,
    LineError,
    SeedBatch,
    SeedLine,
    decode,
    parse_csv,
    parse_lines,
)
from db.models import AuditEntry, Seed
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD


@pytest.fixture
async def cup(services):
    tournament = await services.tournaments.create_tournament(GUILD, MODERATOR, name="Cup")
    pool_a = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Pool A")
    pool_b = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Pool B")
    await services.tournaments.add_seed(GUILD, tournament.id, pool_a.id, MODERATOR, url="https://s.example/old")
    return tournament, pool_a, pool_b


async def seed_count(services) -> int:
    async with services.db.read() as session:
        return await session.scalar(select(func.count(Seed.id)))


# ---- reading ------------------------------------------------------------------------------------------------------
def test_csv_with_a_header_in_any_order_and_quoted_notes() -> None:
    batch = parse_csv('url,notes,pool\nhttps://s.example/1,"easy, short",Pool A\n\nhttps://s.example/2,,Pool B\n')
    assert batch.errors == []
    assert batch.lines == [
        SeedLine(2, "https://s.example/1", "easy, short", "Pool A"),
        SeedLine(4, "https://s.example/2", "", "Pool B"),
    ]


def test_csv_without_a_header_is_pool_url_notes_and_a_lone_cell_is_a_url() -> None:
    batch = parse_csv("Pool A,https://s.example/1,hint\nhttps://s.example/2\n")
    assert batch.lines == [SeedLine(1, "https://s.example/1", "hint", "Pool A"), SeedLine(2, "https://s.example/2")]


def test_csv_problems_are_named_by_line_and_field() -> None:
    batch = parse_csv("pool,url,notes\nPool A,,x\nPool A,https://s.example/1,a,b\n")
    assert batch.errors == [
        LineError(2, "url", "missing"),
        LineError(3, "line", "4 columns; expected pool, url, notes (quote commas)"),
    ]
    assert parse_csv("pool,link\n").errors == []  # no `url` column: read as a data row whose URL is "link"
    assert parse_csv("url,url\nx,y\n").errors[0] == LineError(
        1, "header", "columns must be some of pool, url, notes, each once"
    )
    assert parse_csv("\n\n").errors == [LineError(1, "file", "no seeds in it")]


def test_lines_one_url_each_with_optional_notes() -> None:
    batch = parse_lines("https://s.example/1\n\n  https://s.example/2   second seed \n")
    assert batch.lines == [SeedLine(1, "https://s.example/1"), SeedLine(3, "https://s.example/2", "second seed")]


def test_too_many_lines_and_files_that_are_not_text() -> None:
    batch = parse_lines("\n".join(f"https://s.example/{n}" for n in range(MAX_IMPORT_LINES + 1)))
    assert batch.errors == [
        LineError(MAX_IMPORT_LINES + 1, "file", f"more than {MAX_IMPORT_LINES} seeds; split the file")
    ]
    assert decode(b"pool,url\n\xff\xfe oops")[1] == LineError(
        2, "file", "the file is not UTF-8 text (save it as CSV UTF-8)"
    )
    assert decode("\ufeffurl\nhttps://s.example/1".encode())[0] == "url\nhttps://s.example/1"


# ---- importing ----------------------------------------------------------------------------------------------------
async def test_a_good_batch_is_imported_whole_with_one_audit_entry(services, cup) -> None:
    tournament, pool_a, pool_b = cup
    batch = parse_csv(
        f"pool,url,notes\nPool A,https://s.example/1,hint\n#{pool_b.id},https://s.example/2,\n,https://s.example/3,\n"
    )
    created = await services.tournaments.import_seeds(GUILD, tournament.id, MODERATOR, batch, default_pool_id=pool_b.id)
    assert [(p.pool_id, p.url, p.notes) for p in created] == [
        (pool_a.id, "https://s.example/1", "hint"),
        (pool_b.id, "https://s.example/2", ""),
        (pool_b.id, "https://s.example/3", ""),  # an empty pool cell: the pool the command names
    ]
    page = await services.audit.list(GUILD, limit=5)
    assert page.items[0].action == "seed.import"
    assert page.items[0].details["count"] == 3 and page.items[0].details["per_pool"] == {
        str(pool_a.id): 1,
        str(pool_b.id): 2,
    }


async def test_one_bad_line_refuses_the_whole_batch_and_names_every_bad_line(services, cup) -> None:
    tournament, _, _ = cup
    before = await seed_count(services)
    async with services.db.read() as session:
        audits = await session.scalar(select(func.count(AuditEntry.id)))
    batch = parse_csv(
        "pool,url,notes\n"
        "Pool A,https://s.example/new,fine\n"  # 2: good on its own
        "Pool A,ftp://nope,\n"  # 3: not http(s)
        "Pool Z,https://s.example/z,\n"  # 4: no such pool
        "Pool A,https://s.example/old,\n"  # 5: already in the pool
        "Pool A,https://s.example/new,\n"  # 6: twice in the batch
        ",https://s.example/nopool,\n"  # 7: no pool, and the command names none
        f"Pool A,https://s.example/long,{'x' * 1001}\n"  # 8: notes too long
        "Pool A,https://s.example/9,a,b\n"  # 9: too many columns
    )
    with pytest.raises(ValidationFailed) as caught:
        await services.tournaments.import_seeds(GUILD, tournament.id, MODERATOR, batch)
    error = caught.value
    assert error.field == "seeds"
    assert [(e["line"], e["field"]) for e in error.details["errors"]] == [
        (3, "url"), (4, "pool"), (5, "url"), (6, "url"), (7, "pool"), (8, "notes"), (9, "line"),
    ]  # fmt: skip
    assert error.message.startswith(
        "7 lines are wrong, so no seed was imported:\n- line 3, url: url must be an http(s) URL"
    )
    assert "- line 4, pool: this tournament has no pool 'Pool Z'" in error.message
    assert "- line 5, url: this seed is already in pool Pool A" in error.message
    assert "- line 6, url: the same seed as line 2" in error.message
    assert "- line 7, pool: empty; name the pool" in error.message
    assert await seed_count(services) == before
    async with services.db.read() as session:
        assert await session.scalar(select(func.count(AuditEntry.id))) == audits


async def test_a_pool_or_tournament_of_another_guild_is_not_found_and_nothing_is_made(services, cup) -> None:
    tournament, _, _ = cup
    theirs = await services.tournaments.create_tournament(OTHER_GUILD, MODERATOR, name="Theirs")
    their_pool = await services.tournaments.add_pool(OTHER_GUILD, theirs.id, MODERATOR, name="Pool A")
    batch = SeedBatch([SeedLine(1, "https://s.example/x")])
    with pytest.raises(NotFound):
        await services.tournaments.import_seeds(GUILD, theirs.id, MODERATOR, batch, default_pool_id=their_pool.id)
    with pytest.raises(NotFound):
        await services.tournaments.import_seeds(GUILD, tournament.id, MODERATOR, batch, default_pool_id=their_pool.id)
    by_id = SeedBatch([SeedLine(1, "https://s.example/x", pool=str(their_pool.id))])  # another guild's pool number
    with pytest.raises(ValidationFailed, match="this tournament has no pool"):
        await services.tournaments.import_seeds(GUILD, tournament.id, MODERATOR, by_id)
    assert await seed_count(services) == 1

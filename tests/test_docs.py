"""The documentation stays honest, cheaply.

- every relative link in README.md and docs/*.md resolves (file, and heading anchor when it names one);
- every `STARTLINE_<SECTION>__<KEY>` and `section.key` the docs mention is a real setting, and
  docs/configuration.md lists every setting with the code's default;
- every slash command (and option) the docs name exists in the command tree, and every command of the tree is
  documented in the user or admin guide;
- every `run.py` / `start.sh` invocation the docs show uses a real subcommand and real flags;
- the admin guide's room settings table is the one `room_settings_table` makes from the `RoomSetting` records.
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from discord import app_commands
from pydantic import BaseModel

import run
from bot.app import Application
from bot.discord_bot import StartlineBot
from bot.services.room_profiles import ROOM_SETTINGS, RoomSetting
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ADMIN_GUIDE = ROOT / "docs" / "admin-guide.md"
GUIDES = [ROOT / "docs" / "user-guide.md", ADMIN_GUIDE]

FENCE = re.compile(r"^[ ]{0,3}(```|~~~).*?^[ ]{0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)  # also inside list items
INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)  # a span may continue on the next line
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
ENV_KEY = re.compile(r"STARTLINE_([A-Z]+)__([A-Z][A-Z_]*[A-Z])")
SECTIONS = tuple(Settings.model_fields)
# `api.public_url`, but not `openapi.json`, `bot/api.py` or `racetime.models.Race`.
DOTTED_KEY = re.compile(rf"(?<![\w/.-])({'|'.join(SECTIONS)})\.([a-z_]+)(?![\w(./-])")
NOT_A_KEY = {"md", "py", "toml", "gg", "db", "sh", "ini"}  # `discord.py`, `racetime.md`: names, not settings
OPTION_PLACEHOLDERS = {"options", "settings"}  # `/tournament create <name> [options]`


# ---- reading Markdown -----------------------------------------------------------------------------------------
def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are examples, not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def code_fragments(text: str) -> Iterator[str]:
    """Inline code spans, and each line of the fenced blocks."""
    for block in FENCE.finditer(text):
        yield from (line.strip() for line in block.group(0).splitlines()[1:-1])
    for span in INLINE_CODE.finditer(FENCE.sub("", text)):
        yield " ".join(span.group(2).split())


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", read(path))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# ---- links -----------------------------------------------------------------------------------------------------
def test_docs_exist() -> None:
    assert {path.name for path in DOCS} >= {
        "README.md",
        "user-guide.md",
        "admin-guide.md",
        "api.md",
        "architecture.md",
        "configuration.md",
        "racetime.md",
    }


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in LINK.findall(prose(read(path))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {rel(linked)}")
    assert not broken, f"{rel(path)}: " + "; ".join(broken)


def test_the_slug_rule_matches_githubs() -> None:
    assert (
        slug("`/liverace create <tournament> <pool> <when> [options]`")
        == "liverace-create-tournament-pool-when-options"
    )
    assert slug("Room did not open: `last_error`") == "room-did-not-open-last_error"
    assert slug("1. Setting up from zero") == "1-setting-up-from-zero"


# ---- configuration keys ------------------------------------------------------------------------------------------
def section_model(section: str) -> type[BaseModel]:
    annotation = Settings.model_fields[section].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation


def is_setting(section: str, key: str) -> bool:
    return section in Settings.model_fields and key in section_model(section).model_fields


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_every_configuration_key_mentioned_exists(path: Path) -> None:
    text = read(path)
    unknown = {
        f"STARTLINE_{section}__{key}"
        for section, key in ENV_KEY.findall(text)
        # A nested key (STARTLINE_RACETIME__CATEGORIES__<SLUG>__CLIENT_ID) names its setting first.
        if not is_setting(section.lower(), key.lower().split("__")[0])
    }
    for fragment in code_fragments(text):
        for match in DOTTED_KEY.finditer(fragment):
            section, key = match.groups()
            if key not in NOT_A_KEY and not is_setting(section, key):
                unknown.add(f"{section}.{key}")
    assert not unknown, f"{rel(path)} names settings that do not exist: {sorted(unknown)}"


def configuration_tables() -> dict[str, dict[str, str]]:
    """docs/configuration.md: section -> {key: default as written}."""
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in read(ROOT / "docs" / "configuration.md").splitlines():
        if heading := re.match(r"^## `\[(\w+)\]`", line):
            section = heading.group(1)
            tables[section] = {}
        elif section and line.startswith("| `"):
            keys, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
            for key in re.findall(r"`([a-z_]+)`", keys):
                tables[section][key] = default.strip("`")
    return tables


def same_default(written: str, actual: object) -> bool:
    if written == "unset":
        return actual is None
    try:
        value = tomllib.loads(f"value = {written}")["value"]
    except tomllib.TOMLDecodeError:
        value = written
    return value == actual


def test_configuration_reference_lists_every_setting_with_its_default() -> None:
    tables = configuration_tables()
    assert set(tables) == set(SECTIONS)
    for section in SECTIONS:
        fields = section_model(section).model_fields
        assert set(tables[section]) == set(fields), f"[{section}] in docs/configuration.md"
        for key, written in tables[section].items():
            field = fields[key]
            actual = field.default_factory() if field.default_factory else field.default  # type: ignore[call-arg]
            if hasattr(actual, "get_secret_value"):
                actual = actual.get_secret_value()
            assert same_default(written, actual), f"{section}.{key}: docs say {written}, the code says {actual!r}"


# ---- slash commands ----------------------------------------------------------------------------------------------
@pytest_asyncio.fixture
async def command_tree(settings: Settings) -> AsyncIterator[dict[str, app_commands.Command | app_commands.Group]]:
    """Every command and group of the tree by qualified name, with the cogs loaded as in tests/commands."""
    app = Application(settings, run_migrations=False, start_jobs=False)
    bot = StartlineBot(app, start_app=False)
    await bot._async_setup_hook()
    await bot.setup_hook()
    found: dict[str, app_commands.Command | app_commands.Group] = {}
    for command in bot.tree.get_commands():
        found[command.qualified_name] = command
        if isinstance(command, app_commands.Group):
            for sub in command.walk_commands():
                found[sub.qualified_name] = sub
    yield found
    for extension in list(bot.extensions):
        await bot.unload_extension(extension)
    await app.db.dispose()


def command_mentions(text: str) -> Iterator[tuple[str, list[str]]]:
    """(command as written, option names) for every code fragment that starts with a slash command."""
    for fragment in code_fragments(text):
        tokens = fragment.split()
        if not tokens or not re.fullmatch(r"/[a-z][a-z_-]*", tokens[0]):
            continue  # a URL path such as /api/v1/health or /racetime/callback, or no command at all
        name = tokens[0][1:]
        rest = tokens[1:]
        if rest and re.fullmatch(r"[a-z_]+", rest[0]):
            name, rest = f"{name} {rest[0]}", rest[1:]
        options = [token.rstrip(":") for token in rest if re.fullmatch(r"[a-z_]+:", token)]
        options += [
            word for word in re.findall(r"[<\[]([a-z_]+)[>\]]", " ".join(rest)) if word not in OPTION_PLACEHOLDERS
        ]
        yield name, options


def test_command_mentions_are_parsed() -> None:
    text = "`/liverace info <race> [public]` and\n```\n/tournament create name: Cup runs_per_pool: 2\n```\n`/api/v1/x`"
    assert sorted(command_mentions(text)) == [
        ("liverace info", ["race", "public"]),
        ("tournament create", ["name", "runs_per_pool"]),
    ]


@pytest.mark.parametrize("path", DOCS, ids=rel)
async def test_every_slash_command_named_exists(path: Path, command_tree) -> None:
    problems = []
    for name, options in command_mentions(read(path)):
        command = command_tree.get(name)
        if command is None:
            problems.append(f"/{name}: no such command")
            continue
        if options and isinstance(command, app_commands.Command):
            known = {parameter.name for parameter in command.parameters}
            problems += [f"/{name}: no option {option!r}" for option in options if option not in known]
    assert not problems, f"{rel(path)}: " + "; ".join(sorted(set(problems)))


async def test_every_slash_command_is_documented_in_a_guide(command_tree) -> None:
    documented = {name for path in GUIDES for name, _ in command_mentions(read(path))}
    commands = {name for name, command in command_tree.items() if isinstance(command, app_commands.Command)}
    assert not commands - documented, f"undocumented slash commands: {sorted(commands - documented)}"


# ---- run.py ----------------------------------------------------------------------------------------------------
def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def check_invocation(arguments: list[str]) -> list[str]:
    """Problems with `run.py <arguments>`: an unknown subcommand, action or flag. Values are not checked."""
    parser = run.build_parser()
    commands = subparsers(parser)
    current = parser
    problems = []
    expecting_value = False
    positionals: list[argparse.Action] = []
    for token in arguments:
        token = token.strip("[]")
        if expecting_value:
            expecting_value = False
            continue
        if token.startswith("-"):
            flag = token.split("=")[0]
            action = next((a for p in {parser, current} for a in p._actions if flag in a.option_strings), None)
            if action is None:
                problems.append(f"unknown flag {flag}")
            else:
                expecting_value = action.nargs != 0 and "=" not in token
        elif current is parser:
            if token not in commands:
                problems.append(f"unknown subcommand {token!r}")
                break
            current = commands[token]
            positionals = [a for a in current._actions if not a.option_strings and a.choices]
        elif positionals:
            action = positionals.pop(0)
            if token not in action.choices:
                problems.append(f"{token!r} is not one of {sorted(action.choices)}")
    return problems


def invocations(text: str) -> Iterator[list[str]]:
    for fragment in code_fragments(text):
        fragment = fragment.split(" #")[0]  # a shell comment
        for match in re.finditer(r"(?:run\.py|start\.sh)((?:[ \t]+[^\s#`|]+)*)", fragment):
            yield [token for token in match.group(1).split() if not token.startswith(("<", "$", "\\"))]


def test_invocation_check_catches_mistakes() -> None:
    assert check_invocation(["--config", "x.toml", "sync", "--guild", "1", "--global"]) == []
    assert check_invocation(["token", "create", "--scope", "manage"]) == []
    assert check_invocation(["db", "downgrade"]) == ["'downgrade' is not one of ['upgrade']"]
    assert check_invocation(["migrate"]) == ["unknown subcommand 'migrate'"]
    assert check_invocation(["sync", "--all"]) == ["unknown flag --all"]


@pytest.mark.parametrize("path", DOCS, ids=rel)
def test_every_run_py_invocation_exists(path: Path) -> None:
    problems = [
        f"run.py {' '.join(arguments)}: {problem}"
        for arguments in invocations(read(path))
        for problem in check_invocation(arguments)
    ]
    assert not problems, f"{rel(path)}: " + "; ".join(problems)


# ---- room settings -----------------------------------------------------------------------------------------------
ROOM_SETTINGS_HEADER = "| setting | values | built-in | per race | sent to RaceTime.gg as | what it does |"


def room_settings_table(settings: Iterable[RoomSetting]) -> str:
    """The admin guide's table of room settings, made from the records (bot/services/room_profiles.py)."""
    lines = [ROOM_SETTINGS_HEADER, "|---|---|---|---|---|---|"]
    for setting in settings:
        form = f"`{setting.form_field}`" if setting.form_field else "— (Startline's own)"
        per_race = "yes" if setting.per_race else "no"
        lines.append(
            f"| `{setting.name}` | {setting.range_text} | {setting.default_text} | {per_race} | {form} "
            f"| {setting.description} |"
        )
    return "\n".join(lines)


def test_the_room_settings_table_is_made_from_the_records() -> None:
    text = read(ADMIN_GUIDE)
    assert text.count(ROOM_SETTINGS_HEADER) == 1, "docs/admin-guide.md: one room settings table"
    start = text.index(ROOM_SETTINGS_HEADER)
    end = text.find("\n\n", start)
    expected = room_settings_table(ROOM_SETTINGS.values())
    assert text[start:end] == expected, f"docs/admin-guide.md: replace the room settings table by\n\n{expected}\n"


if __name__ == "__main__":  # `python -m tests.test_docs` prints the room settings table for the admin guide
    print(room_settings_table(ROOM_SETTINGS.values()))

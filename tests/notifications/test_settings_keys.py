"""The notification keys of the configuration: defaults, and one clear line for a bad value."""

from __future__ import annotations

import pytest

from bot.settings import ConfigError, load_settings


def test_defaults(settings):
    assert (settings.notifications.rate_limit_per_second, settings.notifications.claim_lease_seconds) == (40, 120)


@pytest.mark.parametrize(
    ("key", "value"), [("rate_limit_per_second", 0), ("rate_limit_per_second", 5000), ("claim_lease_seconds", 1)]
)
def test_a_bad_value_names_its_key(key, value):
    with pytest.raises(ConfigError) as error:
        load_settings(notifications={key: value})
    assert f"notifications.{key}" in str(error.value)
    assert f"STARTLINE_NOTIFICATIONS__{key.upper()}" in str(error.value)

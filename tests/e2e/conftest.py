"""End-to-end tests: the real process on a temporary database, with the fakes on loopback (slow)."""

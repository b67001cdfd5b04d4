"""Helpers shared by the cogs: checks, option parsing, formatting, views and the command tree.

The package name starts with `_`, so `StartlineBot` does not load it as an extension.
"""

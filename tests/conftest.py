"""Shared fixtures live in modules listed here, so every test module sees the same ones."""

pytest_plugins = [
    "tests.fixtures.stack",
    "tests.fixtures.events",
    "tests.fixtures.demo",
    "tests.scheduling",
]

"""Old name of cookbook.generation, kept only until cookbook/__init__.py imports the new one."""

from cookbook.generation import PRESETS  # noqa: F401

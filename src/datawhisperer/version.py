"""The package version, in a module of its own so that any layer can record it (run.json does) without
importing the package's public API, and with it the command-line layer."""

__version__ = "0.1.0"  # keep in step with pyproject.toml's [project] version

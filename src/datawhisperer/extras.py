"""Optional dependencies, checked when a command starts (before any work), with the one line that installs them."""

from __future__ import annotations

import importlib.util

from .errors import UserError

EXTRAS = {"peft": "train", "matplotlib": "train"}  # module -> the extra of pyproject.toml that brings it


def require(*modules: str, command: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        extras = sorted({EXTRAS[m] for m in missing})
        raise UserError(f"{command} needs {', '.join(missing)}, which a core install lacks: pip install "
                        f"'datawhisperer[{','.join(extras)}]'")

"""datawhisperer: pick the part of a fine-tuning pool worth training on, with the target model's
own few-shot in-context learning (Data Whisperer, ACL 2025)."""

__version__ = "0.1.0"

from .api import select  # noqa: E402
from .selection import Selection  # noqa: E402

__all__ = ["Selection", "__version__", "select"]

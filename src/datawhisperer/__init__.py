"""datawhisperer: pick the part of a fine-tuning pool worth training on, with the target model's
own few-shot in-context learning (Data Whisperer, ACL 2025)."""

from .api import select
from .selection import Selection
from .version import __version__

__all__ = ["Selection", "__version__", "select"]

"""datawhisperer: pick the part of a fine-tuning pool worth training on, with the target model's
own few-shot in-context learning (Data Whisperer, ACL 2025)."""

import os

# PyTorch's OpenMP threads spin while they wait; beside another busy process they then steal its cores and
# both run several times slower (two selections side by side: 7.8x). A short spin keeps a run alone as fast
# and two side by side fair (benchmarks/threads.py). Set before torch loads; a value of the user's own wins.
os.environ.setdefault("GOMP_SPINCOUNT", "3000")

from .api import select
from .selection import Selection
from .version import __version__

__all__ = ["Selection", "__version__", "select"]

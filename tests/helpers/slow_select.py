"""Run a selection with a deliberately slow fake backend, so a test can kill it mid-run.

usage: python slow_select.py POOL OUT SECONDS_PER_EPISODE [extra select options as key=value]
"""

import sys
import time

import datawhisperer
from datawhisperer.backends.fake import FakeBackend


class SlowFakeBackend(FakeBackend):
    """The default fake's answers and attention (so the run equals a CLI run), one episode at a time, slowly."""

    def generate(self, prompts, max_new_tokens, stop=()):
        time.sleep(float(sys.argv[3]) * len(prompts))
        return super().generate(prompts, max_new_tokens, stop)


if __name__ == "__main__":
    options = dict(arg.split("=", 1) for arg in sys.argv[4:])
    datawhisperer.select(sys.argv[1], out=sys.argv[2], backend_instance=SlowFakeBackend(),
                         backend="fake", task="classification", n_demos=3, n_queries=2, quiet=True, resume=True,
                         **{k: int(v) for k, v in options.items()}, estimator="paper", strategy="top")

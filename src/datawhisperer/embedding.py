"""The embedding step: each example's hidden state, for the strategies that need embeddings and for `rds`.

An example's embedding is the target model's mean hidden state at the run's layer over the example's input
turn and the first --answer-tokens tokens of its answer, shown alone after the task instruction. The
calibrated estimator computes exactly that in its coherence pass and records it with each episode; for every
other method, and for the --val examples (what `diverse` covers and `rds` compares with), this step embeds
them in fixed parts of the items (pool examples, then --val examples), logged and resumable like a
baseline's parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError
from .executor import PART_SIZE, Work, execute, merge_shards, parts_work
from .runlogs import EmbeddedPart
from .strategies import needs_embeddings
from .vectors import Embeddings, decode, encode, stack

if TYPE_CHECKING:
    from .executor import Session
    from .inputs import RunInputs
    from .rundir import RunDirectory
    from .tasks import Example


@dataclass(frozen=True)
class EmbeddingPlan:
    pool: int  # pool examples to embed (all or none: 0 when the method records them itself)
    targets: int  # --val examples to embed

    @property
    def size(self) -> int:
        return self.pool + self.targets


def plan_embeddings(inputs: RunInputs, method) -> EmbeddingPlan | None:
    """What this run must embed: nothing unless its strategy or its method uses embeddings."""
    config = inputs.config
    if not needs_embeddings(config, method):
        return None
    records_them = method.records_embeddings(inputs)
    plan = EmbeddingPlan(0 if records_them else len(inputs.examples), len(inputs.queries) if config.val else 0)
    return plan if plan.size else None


def embed_examples(backend, instruction: str, examples: list[Example], answer_tokens: int) -> list[str | None]:
    """Each example alone after the instruction, teacher-forced on its answer's first tokens: its mean hidden
    state at the backend's layer (None where it does not fit the model's context)."""
    from .prompts import PromptBuilder

    builder = PromptBuilder(backend.tokenizer, instruction, "single")
    prompts = [builder.build([], [e]) for e in examples]
    fits = [backend.count_tokens(p.prefix + p.suffixes[0]) + answer_tokens <= backend.max_length for p in prompts]
    vectors: list[str | None] = [None] * len(examples)
    chosen = [k for k, ok in enumerate(fits) if ok]
    if chosen:
        results = backend.score([prompts[k] for k in chosen], [[examples[k].answer] for k in chosen], answer_tokens,
                                embed=True)
        for k, result in zip(chosen, results):
            vectors[k] = encode(result.embeddings[0])
    return vectors


def embedding_work(inputs: RunInputs, backend, plan: EmbeddingPlan) -> Work:
    items = [*inputs.examples[: plan.pool], *inputs.queries[: plan.targets]]

    def play(indices: list[int]) -> list[str | None]:
        return embed_examples(backend(), inputs.instruction, [items[i] for i in indices], inputs.config.answer_tokens)

    def record(start: int, vectors, count: int, seconds: float) -> EmbeddedPart:
        return EmbeddedPart(start, list(vectors), round(seconds, 3))

    return parts_work("embedded", plan.size, play, record, desc="embedding")


def run_embedding(session: Session, plan: EmbeddingPlan | None) -> Embeddings | None:
    """Embed this process's parts; the whole run's embeddings on the main process (None elsewhere)."""
    if plan is None:
        return None
    done = execute(session, embedding_work(session.inputs, session.load_backend, plan))
    if not session.topology.is_main or session.topology.shard:
        return None
    return assemble(done.records, plan, len(session.inputs.examples))


def merge_embedding(inputs: RunInputs, plan: EmbeddingPlan | None, shards: list[tuple[RunDirectory, dict]]
                    ) -> Embeddings | None:
    """The embeddings of a sharded run, from every shard's logged parts (each shard holds exactly its own)."""
    if plan is None:
        return None
    return assemble(merge_shards(embedding_work(inputs, None, plan), shards), plan, len(inputs.examples))


def assemble(parts: dict[int, EmbeddedPart], plan: EmbeddingPlan, n_pool: int) -> Embeddings:
    vectors: dict[int, np.ndarray] = {}
    for start in range(0, plan.size, PART_SIZE):
        for offset, text in enumerate(parts[start].vectors):
            if text is not None:
                vectors[start + offset] = decode(text)
    pool = stack({i: v for i, v in vectors.items() if i < plan.pool}, n_pool) if plan.pool else None
    targets = stack({i - plan.pool: v for i, v in vectors.items() if i >= plan.pool}, plan.targets) \
        if plan.targets else None
    if plan.targets and targets is None:
        raise UserError("none of the --val examples fits the model's context, so there is nothing to cover or "
                        "compare with: give shorter --val examples, or a smaller --answer-tokens")
    return Embeddings(pool, targets)


def recorded_embeddings(outcomes, n_pool: int) -> np.ndarray | None:
    """The embeddings a method recorded with its episodes (one per example shown alone), or None."""
    return stack({o.demos[0]: decode(o.embedding) for o in outcomes
                  if not o.failed and len(o.demos) == 1 and o.embedding is not None}, n_pool)

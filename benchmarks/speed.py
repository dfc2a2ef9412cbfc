"""Speed: the paper's reference procedure against `datawhisperer select`, same pool, model and episodes.

    python benchmarks/speed.py                      # embedded SmolLM2, 36 BioInstruct records
    python benchmarks/speed.py --records 72 --out benchmarks/results/speed.json

The reference procedure is written here, in our own code, as the paper's code does it: eager attention
in every layer, batched greedy generation of an episode's queries after the demonstrations, then a
second forward pass with output_attentions=True to read the chosen layer. Model loading is excluded.
Prints seconds per pool example, ratios, prefill tokens/s and GFLOP/s against this machine's measured
fp32 matmul peak.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from datawhisperer.backends.hf import HFBackend
from datawhisperer.inputs import check_inputs
from datawhisperer.methods import METHODS
from datawhisperer.player import EpisodePlayer
from datawhisperer.prompts import PromptBuilder
from datawhisperer.select_config import SelectConfig

DEFAULT_POOL = Path(__file__).resolve().parents[2] / "shared" / "data" / "bioinstruct" / "pool.json"


def matmul_peak_gflops(size: int = 2048, trials: int = 7) -> float:
    """The best of several timed fp32 GEMMs: what this machine's cores can do at most."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_token(model, context: int) -> float:
    """2 x the parameters of the layers (input embeddings and lm_head excluded: each procedure projects a different
    number of positions to the vocabulary) + attention scores and mixing over the context."""
    config = model.config
    params = sum(p.numel() for p in model.parameters()) - model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        params -= head.weight.numel()
    return 2 * params + 4 * config.num_hidden_layers * config.hidden_size * context


@torch.inference_mode()
def reference_episode(backend: HFBackend, builder: PromptBuilder, prepared, episode, max_new_tokens: int) -> float:
    """One episode the reference way; returns the number of prompt tokens it pushed through the model."""
    tokenizer, model = backend.tokenizer, backend.model
    demos = [prepared.examples[i] for i in episode.demos]
    queries = [prepared.queries[q] for q in episode.queries]
    prompt = builder.build(demos, queries)
    texts = [prompt.prefix + suffix for suffix in prompt.suffixes]
    tokenizer.padding_side = "left"
    batch = tokenizer(texts, add_special_tokens=False, return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=backend.pad_id)
    answers = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    [prepared.metric(a, q.answer) for a, q in zip(answers, queries)]
    attentions = model(**batch, output_attentions=True).attentions[backend.layer]  # the second pass
    attentions.sum(dim=(1, 2))  # read the layer's weights
    return float(batch["attention_mask"].sum()) * 2  # prompts go through the model twice


def time_reference(backend, prepared, episodes, max_new_tokens) -> tuple[float, float]:
    builder = PromptBuilder(backend.tokenizer, prepared.task.instruction, "single")
    backend.model.set_attn_implementation("eager")
    try:
        start, tokens = time.perf_counter(), 0.0
        for episode in episodes:
            tokens += reference_episode(backend, builder, prepared, episode, max_new_tokens)
        return time.perf_counter() - start, tokens
    finally:
        from datawhisperer.attention import ATTN_IMPLEMENTATION

        backend.model.set_attn_implementation(ATTN_IMPLEMENTATION)


def time_ours(backend, prepared, episodes) -> tuple[float, int, float]:
    """(seconds, prompt tokens, prefill seconds) of playing the episodes as `select` does (in batches of
    --episode-batch); the prefill is timed inside the backend."""
    player = EpisodePlayer(prepared, backend)
    backend.timing.update(prefill_seconds=0.0, prefill_tokens=0, decode_seconds=0.0, decode_steps=0)
    group = prepared.config.episode_batch
    start, tokens = time.perf_counter(), 0
    for k in range(0, len(episodes), group):
        tokens += sum(o.prompt_tokens for o in player.play_group(episodes[k: k + group]))
    return time.perf_counter() - start, tokens, backend.timing["prefill_seconds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", default=str(DEFAULT_POOL))
    parser.add_argument("--records", type=int, default=36)
    parser.add_argument("--task", default="instruction")
    parser.add_argument("--model", default=None)
    parser.add_argument("--n-demos", type=int, default=3)
    parser.add_argument("--n-queries", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--episode-batch", type=int, default=4, help="episodes per batch in the batched rows")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if not Path(args.pool).exists():
        print(f"skipped: {args.pool} is not here (the benchmark reads ../shared/data by path)")
        return 0
    records = json.loads(Path(args.pool).read_text(encoding="utf-8"))[: args.records]
    backend = HFBackend(args.model, device=args.device, dtype=args.dtype, log=lambda m: None)
    peak = matmul_peak_gflops() if backend.device.type == "cpu" else float("nan")
    rows = {}
    modes = [("reference", 1), ("generate", 1), ("generate", args.episode_batch), ("likelihood", 1)]
    for scoring, group in modes:
        name = scoring if group == 1 else f"{scoring} x{group}"
        config = SelectConfig(task=args.task, estimator="paper", strategy="top", n_demos=args.n_demos,
                              n_queries=args.n_queries,
                              max_new_tokens=args.max_new_tokens, scoring="generate" if scoring == "reference"
                              else scoring, episode_batch=group, quiet=True)
        prepared = check_inputs(config, METHODS.get(config.method), records)
        episodes = prepared.plan.episodes()
        if scoring == "reference":  # prefill is not separable inside generate: whole-procedure throughput
            seconds, tokens = time_reference(backend, prepared, episodes, args.max_new_tokens)
            prefill = seconds
        else:
            seconds, tokens, prefill = time_ours(backend, prepared, episodes)
        context = tokens / max(1, len(episodes) * args.n_queries)
        rows[name] = {"seconds": seconds, "per_example": seconds / len(records), "episodes": len(episodes),
                         "prompt_tokens": tokens, "prefill_seconds": prefill, "tokens_per_second": tokens / prefill,
                         "gflops": tokens * flops_per_token(backend.model, int(context)) / prefill / 1e9}
    reference = rows["reference"]["per_example"]
    print(f"model {backend.description['model']} ({backend.description['parameters'] / 1e6:.0f}M), "
          f"{backend.description['device']} {backend.description['dtype']}, {len(records)} records, "
          f"n_demos {args.n_demos}, n_queries {args.n_queries}, max_new_tokens {args.max_new_tokens}, "
          f"layer {backend.layer}; fp32 matmul peak {peak:.0f} GFLOP/s, torch threads {torch.get_num_threads()}")
    print("prefill tok/s and GFLOP/s: the prompt tokens over the prefill time (for the reference, over its whole time)")
    print(f"{'procedure':<15}{'s/example':>11}{'speed-up':>10}{'prefill tok/s':>15}{'GFLOP/s':>9}{'% of peak':>11}")
    for name, row in rows.items():
        row["speedup"] = reference / row["per_example"]
        row["peak_fraction"] = row["gflops"] / peak if peak == peak else None
        share = f"{100 * row['peak_fraction']:.0f}%" if row["peak_fraction"] is not None else "n/a"
        print(f"{name:<15}{row['per_example']:>11.3f}{row['speedup']:>9.2f}x{row['tokens_per_second']:>15.0f}"
              f"{row['gflops']:>9.1f}{share:>11}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "matmul_peak_gflops": peak,
                                              "model": backend.description, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

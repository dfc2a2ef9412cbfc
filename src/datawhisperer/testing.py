"""Tiny random models and a byte-level tokenizer built from a config (no downloads): for tests,
benchmarks and trying the pipeline without weights."""

from __future__ import annotations

import random

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def byte_tokenizer(chat_template: str | None = CHATML) -> PreTrainedTokenizerFast:
    """One token per byte, plus chat special tokens: any text round-trips, offsets are exact."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    core = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<pad>",
                                        additional_special_tokens=["<|im_start|>"])
    tokenizer.chat_template = chat_template
    return tokenizer


ARCHS = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def tiny_model(arch: str = "llama", tokenizer=None, seed: int = 0, layers: int = 3, hidden: int = 64):
    torch.manual_seed(seed)
    tokenizer = tokenizer or byte_tokenizer()
    config_cls, model_cls = ARCHS[arch]
    config = config_cls(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=None, tie_word_embeddings=False)
    return model_cls(config).eval()


def teach_labels(model, tokenizer, records: list[dict], instruction: str, steps: int = 150, lr: float = 3e-3,
                 shots: int = 4, batch: int = 8, seed: int = 0):
    """Train a tiny model briefly on few-shot chats of `records` ({"text": ..., "label": ...}), rendered
    with the tokenizer's chat template. A random model's greedy answers are garbage cut at the token
    limit; after this it answers with one of the labels and ends its turn, right part of the time, so
    tests of generation see real, varied scores. Deterministic for a given seed and thread count."""
    torch.manual_seed(seed)
    rng = random.Random(seed)

    def chat() -> str:
        messages = [{"role": "system", "content": instruction}]
        for record in rng.sample(records, shots):
            messages += [{"role": "user", "content": record["text"]}, {"role": "assistant", "content": record["label"]}]
        return tokenizer.apply_chat_template(messages, tokenize=False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest on a busy machine, and deterministic
    model.train()
    try:
        for _ in range(steps):
            texts = [chat() for _ in range(batch)]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            labels = encoded.input_ids.masked_fill(encoded.attention_mask == 0, -100)
            model(**encoded, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    return model.eval()

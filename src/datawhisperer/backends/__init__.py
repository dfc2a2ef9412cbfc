"""Model backends. Each implements `Backend` and registers by name; heavy ones import lazily."""

from .base import BACKENDS, Backend, EpisodeResult, load_backend

__all__ = ["BACKENDS", "Backend", "EpisodeResult", "load_backend"]

"""Which encoder a build or reindex embeds with: in this process, or on a Ray cluster."""

from __future__ import annotations

from casematch.config import Settings
from casematch.encoders import Encoder, load_encoder


def on_ray(settings: Settings, local: Encoder, model_path: str | None = None) -> Encoder:
    """`local` itself, or a `RayEncoder` around it when `settings.ray_address` is set
    (`--ray`, `[index] ray_address`): the same model, runtime and chunking, so the index
    written is the one a local run writes. `model_path`: the folder the workers load, for a
    model tuned into the index (named relative to it)."""
    if not settings.ray_address:
        return local
    from casematch.encoders.ray import RayEncoder

    return RayEncoder(local, settings.ray_address, model_path=model_path)


def ray_encoder(settings: Settings) -> Encoder | None:
    """A `RayEncoder` for the configured model when `settings.ray_address` is set, else None."""
    if not settings.ray_address:
        return None
    return on_ray(settings, load_encoder(settings.model or "default", device=settings.device,
                                         batch_size=settings.batch_size,
                                         runtime=settings.runtime))

"""Which encoder a build or reindex embeds with: in this process, or on a Ray cluster."""

from __future__ import annotations

from casematch.config import Settings
from casematch.encoders import Encoder, load_encoder


def ray_encoder(settings: Settings) -> Encoder | None:
    """A `RayEncoder` when `settings.ray_address` is set (`--ray`, `[index] ray_address`).

    It wraps the local encoder of the same model, runtime and batch size, so the index it
    writes is the one a local build writes; None when embedding stays in this process.
    """
    if not settings.ray_address:
        return None
    from casematch.encoders.ray import RayEncoder

    local = load_encoder(settings.model or "default", device=settings.device,
                         batch_size=settings.batch_size, runtime=settings.runtime)
    return RayEncoder(local, settings.ray_address)

"""A batch of stored photos -> the model's outputs, with decoding overlapped with the model.

`PhotoPredictor.predict(photos)` walks the photos in chunks of `model_batch`: while the model
runs on one chunk, the decoder threads (`matcher.decode`) decode the next ones, so on a GPU
the model waits for decoding only at the start and on a CPU decoding fills the gaps the
model leaves. JPEGs go through nvJPEG when the device is CUDA. Photos that cannot be decoded
are reported (and never reach the model); the outputs come back in the order decoded.

With a bundle calibrated on cropped queries (`Bundle.crops_queries`), each chunk's first pass
also gives the feature maps `matcher.crop` finds the object in; photos where it cuts a crop
are read again at full size and the crops go through the model in one more batch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from artwatch.images import ImageStore
from matcher.bundle import Bundle
from matcher.crop import Box, cropped_features
from matcher.decode import JpegTensorDecoder, Photo, PhotoDecoder, PhotoUnreadable

log = logging.getLogger(__name__)


@dataclass
class BatchOutput:
    """Model outputs for the photos that decoded (`ids`, in row order) and what did not.

    `logits`: N x objects float32, `embeddings`: N x d float32 (L2-normalised; a photo
    whose object crop was embedded instead has its box in `crops`); `unreadable`: images.id
    -> why it can never be used; `retry`: ids to try again later.
    """

    ids: list[int]
    logits: np.ndarray
    embeddings: np.ndarray
    unreadable: dict[int, PhotoUnreadable] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)
    crops: dict[int, Box] = field(default_factory=dict)  # id -> the object crop embedded
    # id -> the whole picture's embedding of a photo embedded from its crop (what decides
    # whether two photos of a listing are the same picture)
    wholes: dict[int, np.ndarray] = field(default_factory=dict)


class PhotoPredictor:
    """Decoder pool + bundle: how a batch of stored photos becomes model outputs."""

    def __init__(self, bundle: Bundle, store: ImageStore, *, threads: int = 0,
                 model_batch: int = 64) -> None:
        self.bundle = bundle
        self.model_batch = max(1, model_batch)
        self.cpu = PhotoDecoder(store, bundle.preprocess, threads)
        self.decoder: PhotoDecoder | JpegTensorDecoder = self.cpu
        if bundle.device.type == "cuda":
            self.decoder = JpegTensorDecoder(self.cpu, bundle.device)

    def predict(self, photos: Sequence[Photo]) -> BatchOutput:
        out = BatchOutput([], np.zeros((0, len(self.bundle.objects)), np.float32),
                          np.zeros((0, self.bundle.embedding_dim), np.float32))
        logits: list[torch.Tensor] = []
        embeds: list[torch.Tensor] = []
        by_id = {p.image_id: p for p in photos}
        for chunk in self.decoder.chunks(photos, self.model_batch):
            out.unreadable.update(chunk.unreadable)
            out.retry += chunk.retry
            if not chunk.ids:
                continue
            if self.bundle.crops_queries:
                chunk_logits, chunk_embeds, boxes, wholes = self._cropped(
                    chunk.pixels, [by_id[i] for i in chunk.ids])
                for k, (i, box) in enumerate(zip(chunk.ids, boxes, strict=True)):
                    if box is not None:
                        out.crops[i] = box
                        out.wholes[i] = wholes[k]
            else:
                chunk_logits, chunk_embeds = self.bundle.forward_pixels(chunk.pixels)
            out.ids += chunk.ids
            logits.append(chunk_logits)
            embeds.append(chunk_embeds)
        if logits:
            out.logits = torch.cat(logits).numpy()
            out.embeddings = torch.cat(embeds).numpy()
        return out

    def _cropped(self, pixels: torch.Tensor, photos: list[Photo]
                 ) -> tuple[torch.Tensor, torch.Tensor, list[Box | None], np.ndarray]:
        """(logits, embeddings, crop boxes, whole pictures' embeddings) with each photo
        embedded from its object crop where `matcher.crop` cuts one: a second pass over the
        crops, cut from the full photo."""
        maps, pooled = self.bundle.forward_maps(pixels)

        def full(i: int) -> Image.Image | None:
            try:
                return self.cpu.store.open_rgb(photos[i].sha256)
            except (OSError, ValueError) as exc:  # gone or unreadable since (ImageRejected
                # is a ValueError): the whole photo's features, as `Recogniser.score` does
                log.warning("photo %s unreadable for its object crop: %s", photos[i].sha256, exc)
                return None

        def pool(crops: np.ndarray) -> np.ndarray:
            return self.bundle.forward_maps(torch.from_numpy(crops))[1].numpy()

        feats, boxes = cropped_features(pooled.numpy(), maps, [p.size for p in photos], full,
                                        self.bundle.preprocess, pool)
        chunk_logits, chunk_embeds = self.bundle.forward_pooled(torch.from_numpy(feats))
        wholes = self.bundle.forward_pooled(pooled)[1].numpy()
        return chunk_logits, chunk_embeds, boxes, wholes

    def close(self) -> None:
        self.cpu.close()

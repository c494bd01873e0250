"""A batch of stored photos -> the model's outputs, with decoding overlapped with the model.

`PhotoPredictor.predict(photos)` walks the photos in chunks of `model_batch`: while the model
runs on one chunk, the decoder threads (`matcher.decode`) decode the next ones, so on a GPU
the model waits for decoding only at the start and on a CPU decoding fills the gaps the
model leaves. JPEGs go through nvJPEG when the device is CUDA. Photos that cannot be decoded
are reported (and never reach the model); the outputs come back in the order decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from artwatch.images import ImageStore
from matcher.bundle import Bundle
from matcher.decode import JpegTensorDecoder, Photo, PhotoDecoder, PhotoUnreadable


@dataclass
class BatchOutput:
    """Model outputs for the photos that decoded (`ids`, in row order) and what did not.

    `logits`: N x objects float32, `embeddings`: N x d float32 (L2-normalised);
    `unreadable`: images.id -> why it can never be used; `retry`: ids to try again later.
    """

    ids: list[int]
    logits: np.ndarray
    embeddings: np.ndarray
    unreadable: dict[int, PhotoUnreadable] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)


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
        for chunk in self.decoder.chunks(photos, self.model_batch):
            out.unreadable.update(chunk.unreadable)
            out.retry += chunk.retry
            if not chunk.ids:
                continue
            chunk_logits, chunk_embeds = self.bundle.forward_pixels(chunk.pixels)
            out.ids += chunk.ids
            logits.append(chunk_logits)
            embeds.append(chunk_embeds)
        if logits:
            out.logits = torch.cat(logits).numpy()
            out.embeddings = torch.cat(embeds).numpy()
        return out

    def close(self) -> None:
        self.cpu.close()

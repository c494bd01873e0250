"""Stored photos -> model-input pixels, decoded in parallel at about the model's resolution.

The model sees `resolution` x `resolution` pixels (224 for Lite0); a listing photo is often
1600 x 1200. Decoding it at full size and then shrinking it is most of the work, so:

* JPEGs are decoded with Pillow's draft mode: libjpeg scales by 1/2, 1/4 or 1/8 inside the
  inverse DCT, to the smallest size whose longer side is still at least the resolution
  (a 1600 x 1200 photo decodes as 400 x 300), then `Preprocess.fit` resizes and pads it once.
  Other formats decode at full size. The picture is normalised as the image store does
  (EXIF orientation, first frame, 8-bit RGB; `artwatch.images.decode.to_rgb`).
* Photos decode in a pool of threads: Pillow releases the interpreter lock while it decodes
  and resizes, so threads use every core without copying pixels between processes. The pool
  is created on first use, i.e. after Celery's prefork pool forked the worker process.
* Memory is bounded: at most `threads` pictures are ever held at decoded size (each thread
  holds one until it is resized), and only `2 x chunk` photos are in flight; what is kept is
  the R x R x 3 uint8 input (150 KB at 224).
* On CUDA (`JpegTensorDecoder`): JPEGs are decoded in batches by nvJPEG
  (`torchvision.io.decode_jpeg(device="cuda")`), resized with the same antialiased bicubic
  filter on the GPU and padded there; a photo nvJPEG cannot take (another format, an EXIF
  rotation, CMYK, a decode error) goes to the CPU pool. The same code runs on the CPU, which
  is how the tests check it agrees with the Pillow path.

A photo that cannot be decoded raises `PhotoUnreadable` with a short reason (`missing_file`,
`corrupt`, `not_an_image`, `too_many_pixels`, `format_not_allowed`): the matcher records it as
failed once. A read that fails for another reason (an I/O error that may pass) raises
`PhotoReadError`, and the photo is tried again later.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps

from artwatch.images import ImageStore
from artwatch.images.decode import ImageRejected, open_image, to_rgb
from matcher.preprocess import Preprocess

EXIF_ORIENTATION = 0x0112
JPEG_FORMATS = ("JPEG", "MPO")


class PhotoUnreadable(Exception):
    """A stored photo that cannot become model input, ever; `reason` is a short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class PhotoReadError(Exception):
    """A stored photo that could not be read now (I/O); it is tried again later."""


@dataclass(frozen=True)
class Photo:
    """A stored photo to decode: its images.id, content address and, when known, its
    (width, height) as stored (upright: what `matcher.crop` maps a crop to)."""

    image_id: int
    sha256: str
    size: tuple[int, int] | None = None


@dataclass
class DecodedChunk:
    """Model input for up to `chunk` photos, in the order given, and what failed.

    `pixels` is N x R x R x 3 uint8 (N = len(ids)) on the CPU, or on the GPU from
    `JpegTensorDecoder`; `unreadable` maps images.id -> PhotoUnreadable, `retry` lists the
    ids whose read failed for now.
    """

    ids: list[int]
    pixels: torch.Tensor
    unreadable: dict[int, PhotoUnreadable] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)


def draft_request(width: int, height: int, resolution: int) -> tuple[int, int]:
    """The size to ask Pillow's JPEG draft for: the longer side still >= `resolution`."""
    longest = max(width, height)
    if longest <= resolution:
        return width, height
    return (max(1, -(-width * resolution // longest)), max(1, -(-height * resolution // longest)))


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open (headers only) stored bytes with the image store's format and size limits
    (`artwatch.images.decode.open_image`); PhotoUnreadable with the store's reason code."""
    try:
        return open_image(data, max_pixels=max_pixels)
    except ImageRejected as exc:
        raise PhotoUnreadable(exc.reason, exc.detail) from None


def model_pixels(data: bytes, preprocess: Preprocess, max_pixels: int) -> np.ndarray:
    """Stored photo bytes -> R x R x 3 uint8 model input (JPEGs decoded in draft mode)."""
    image = open_checked(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if image.format in JPEG_FORMATS:
                image.draft("RGB", draft_request(*image.size, preprocess.resolution))
            image.seek(0)
            image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as exc:
        raise PhotoUnreadable("corrupt", f"cannot decode: {exc}") from None
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block does not lose the photo (as the image store)
        oriented = image
    return preprocess.fit(to_rgb(oriented))


def read_photo(store: ImageStore, photo: Photo) -> bytes:
    """The stored bytes of a photo; PhotoUnreadable when the file is gone for good."""
    try:
        return store.read_bytes(photo.sha256)
    except FileNotFoundError:
        raise PhotoUnreadable("missing_file", f"{photo.sha256} is not in the image store") from None
    except OSError as exc:
        raise PhotoReadError(f"{photo.sha256}: {exc}") from exc


def default_threads() -> int:
    """One decoding thread per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class PhotoDecoder:
    """A pool of threads turning stored photos into model input, `chunk` photos at a time."""

    def __init__(self, store: ImageStore, preprocess: Preprocess, threads: int = 0) -> None:
        self.store = store
        self.preprocess = preprocess
        self.threads = threads or default_threads()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0

    @property
    def pool(self) -> ThreadPoolExecutor:
        # Threads do not survive a fork: a pool made before one is made again after it.
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")
            self._pid = os.getpid()
        return self._pool

    def pixels(self, photo: Photo) -> np.ndarray:
        """One photo's R x R x 3 uint8 input (PhotoUnreadable / PhotoReadError)."""
        return model_pixels(read_photo(self.store, photo), self.preprocess, self.store.max_pixels)

    def chunks(self, photos: Sequence[Photo], chunk: int) -> Iterator[DecodedChunk]:
        """Decoded chunks in order; later chunks decode while the caller uses earlier ones."""
        pending: deque[tuple[Photo, Future[np.ndarray]]] = deque()
        todo = iter(photos)
        ahead = 2 * chunk

        def refill() -> None:
            while len(pending) < ahead:
                photo = next(todo, None)
                if photo is None:
                    return
                pending.append((photo, self.pool.submit(self.pixels, photo)))

        refill()
        while pending:
            out = DecodedChunk([], torch.empty(0))
            arrays: list[np.ndarray] = []
            while pending and len(out.ids) + len(out.unreadable) + len(out.retry) < chunk:
                photo, future = pending.popleft()
                try:
                    arrays.append(future.result())
                    out.ids.append(photo.image_id)
                except PhotoUnreadable as exc:
                    out.unreadable[photo.image_id] = exc
                except PhotoReadError:
                    out.retry.append(photo.image_id)
                refill()
            out.pixels = _stack(arrays, self.preprocess.resolution)
            yield out

    def close(self) -> None:
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None


def _stack(arrays: list[np.ndarray], resolution: int) -> torch.Tensor:
    if not arrays:
        return torch.empty((0, resolution, resolution, 3), dtype=torch.uint8)
    return torch.from_numpy(np.stack(arrays))


class JpegTensorDecoder:
    """Batched JPEG decoding with torchvision (nvJPEG on CUDA), resize and pad on the device.

    Photos it cannot take go to `cpu` (the PhotoDecoder): another format, an EXIF rotation
    (nvJPEG ignores it), CMYK, or a decode error. Full-size pictures live on the device only
    for one sub-batch of `decode_batch` photos.
    """

    def __init__(self, cpu: PhotoDecoder, device: str | torch.device,
                 decode_batch: int = 128) -> None:
        self.cpu = cpu
        self.device = torch.device(device)
        self.decode_batch = decode_batch
        self.preprocess = cpu.preprocess

    def tensor_ready(self, data: bytes) -> bool:
        """Whether the tensor decoder takes these bytes (a plain RGB/grey JPEG within limits)."""
        try:
            image = open_checked(data, self.cpu.store.max_pixels)
        except PhotoUnreadable:
            return False  # the CPU path records why
        if image.format not in JPEG_FORMATS or image.mode not in ("RGB", "L"):
            return False
        try:
            orientation = image.getexif().get(EXIF_ORIENTATION, 1)
        except Exception:
            return False
        return orientation in (0, 1)

    def fit(self, image: torch.Tensor) -> torch.Tensor:
        """C x H x W uint8 on the device -> R x R x 3 uint8, as `Preprocess.fit` does."""
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as tvf

        res = self.preprocess.resolution
        height, width = int(image.shape[-2]), int(image.shape[-1])
        new_w, new_h = self.preprocess.fitted_size(width, height)
        if (new_w, new_h) != (width, height):
            image = tvf.resize(image, [new_h, new_w], interpolation=InterpolationMode.BICUBIC,
                               antialias=True)
        canvas = torch.tensor(self.preprocess.fill, dtype=torch.uint8, device=image.device)
        canvas = canvas.view(3, 1, 1).expand(3, res, res).clone()
        top, left = (res - new_h) // 2, (res - new_w) // 2
        canvas[:, top:top + new_h, left:left + new_w] = image
        return canvas.permute(1, 2, 0)

    def _decode(self, datas: list[bytes]) -> list[torch.Tensor | None]:
        from torchvision.io import ImageReadMode, decode_jpeg

        tensors = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
        try:
            return list(decode_jpeg(tensors, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad photo fails the batch: decode one by one
            out: list[torch.Tensor | None] = []
            for tensor in tensors:
                try:
                    out.append(decode_jpeg(tensor, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def chunks(self, photos: Sequence[Photo], chunk: int) -> Iterator[DecodedChunk]:
        """Decoded chunks (pixels on the device), in order."""
        for start in range(0, len(photos), chunk):
            yield self._chunk(photos[start:start + chunk])

    def _chunk(self, photos: Sequence[Photo]) -> DecodedChunk:
        out = DecodedChunk([], torch.empty(0))
        ready: list[tuple[Photo, bytes]] = []
        fallback: list[Photo] = []
        for photo, data in zip(photos, self.cpu.pool.map(self._read, photos), strict=True):
            if isinstance(data, PhotoUnreadable):
                out.unreadable[photo.image_id] = data
            elif isinstance(data, PhotoReadError):
                out.retry.append(photo.image_id)
            elif self.tensor_ready(data):
                ready.append((photo, data))
            else:
                fallback.append(photo)
        decoded: dict[int, torch.Tensor] = {}
        for start in range(0, len(ready), self.decode_batch):
            part = ready[start:start + self.decode_batch]
            for (photo, _), image in zip(part, self._decode([d for _, d in part]), strict=True):
                if image is None:
                    fallback.append(photo)
                else:
                    decoded[photo.image_id] = self.fit(image)
        for cpu_chunk in self.cpu.chunks(fallback, max(1, len(fallback))):
            out.unreadable.update(cpu_chunk.unreadable)
            out.retry += cpu_chunk.retry
            for image_id, pixels in zip(cpu_chunk.ids, cpu_chunk.pixels, strict=True):
                decoded[image_id] = pixels.to(self.device)
        out.ids = [p.image_id for p in photos if p.image_id in decoded]
        if out.ids:
            out.pixels = torch.stack([decoded[i] for i in out.ids])
        else:
            res = self.preprocess.resolution
            out.pixels = torch.empty((0, res, res, 3), dtype=torch.uint8, device=self.device)
        return out

    def _read(self, photo: Photo) -> bytes | PhotoUnreadable | PhotoReadError:
        try:
            return read_photo(self.cpu.store, photo)
        except (PhotoUnreadable, PhotoReadError) as exc:
            return exc


def photos_of(rows: Iterable[dict]) -> list[Photo]:
    """Photo refs from `images` rows (id, sha256, and width / height where selected)."""
    return [Photo(int(r["id"]), str(r["sha256"]).strip(),
                  (int(r["width"]), int(r["height"])) if r.get("width") else None)
            for r in rows]

"""Model input preparation shared by training and the matcher.

The paper's reference code fed BGR 0-255 pixels without normalisation and resized photos in a
chain; here every consumer turns the *original* RGB photo into the model input the same way:
aspect-preserving antialiased resize so the longer side equals the resolution, centred padding
to a square with the backbone's mean colour (which normalises to zero), then the backbone's own
mean/std. Keeping this in one module is what guarantees training and serving agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Preprocess:
    """RGB photo -> normalised CHW float tensor at `resolution` x `resolution`."""

    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def fitted_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of a width x height photo resized so its longer side fits."""
        scale = self.resolution / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    @property
    def fill(self) -> tuple[int, int, int]:
        """The padding colour: the backbone's mean, which normalises to zero."""
        return tuple(int(round(m * 255)) for m in self.mean)  # type: ignore[return-value]

    def fit(self, image: Image.Image) -> np.ndarray:
        """Resize (antialiased, aspect kept) and pad to a square: HxWx3 uint8."""
        image = image.convert("RGB") if image.mode != "RGB" else image
        width, height = image.size
        new_w, new_h = self.fitted_size(width, height)
        if (new_w, new_h) != (width, height):
            # PIL's resize filters integrate over the source footprint, i.e. antialias.
            image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=None)
        canvas = Image.new("RGB", (self.resolution, self.resolution), self.fill)
        canvas.paste(image, ((self.resolution - new_w) // 2, (self.resolution - new_h) // 2))
        return np.array(canvas, dtype=np.uint8)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 NxHxWx3 (or HxWx3) -> float N x 3 x H x W with the backbone's mean/std."""
        batch = pixels.unsqueeze(0) if pixels.dim() == 3 else pixels
        x = batch.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """One photo -> 3 x R x R float tensor."""
        return self.normalise(torch.from_numpy(self.fit(image)))[0]

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Photos -> N x 3 x R x R float tensor, each resized from its original."""
        arrays = np.stack([self.fit(image) for image in images])
        return self.normalise(torch.from_numpy(arrays))

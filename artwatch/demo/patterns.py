"""Decoration for generated artefacts: motifs, scripts, silhouettes and material finishes.

Real collections are hard for a recogniser because neighbouring objects share shape, palette
and decorative vocabulary and differ in the particular pattern. So a *style* (a ware: blue and
white porcelain, verdigris bronze, Attic black-figure ...) fixes the palette, finish and motif
repertoire, and each object draws its own arrangement of bands, repeats, glyphs, figures, wear
and stains from its own generator. Everything is a function of object-space positions so
patterns stay seamless on any surface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .noise import Noise3, blur, sample_bilinear, smoothstep

TAU = 2.0 * np.pi


def line(d: np.ndarray, width: float, aa: float = 0.02) -> np.ndarray:
    """Coverage of a stroke of half-width `width` at distance `d`, with a soft edge."""
    return 1.0 - smoothstep(width - aa, width + aa, d)


# ---------------------------------------------------------------------------------------------
# Glyphs, scripts and silhouettes (small rasters sampled by the painters)
# ---------------------------------------------------------------------------------------------


def make_glyph(
    rng: np.random.Generator, cells: int = 5, res: int = 40, symmetric: bool = True
) -> np.ndarray:
    """A random blocky ornament tile (fret, lozenge, stamp): coverage in [0, 1], res x res."""
    half = (cells + 1) // 2 if symmetric else cells
    for _ in range(20):
        grid = rng.random((cells, half)) < 0.5
        if symmetric:
            grid = np.concatenate([grid, grid[:, : cells - half][:, ::-1]], axis=1)
        if 0.3 < grid.mean() < 0.7:
            break
    big = np.kron(grid.astype(np.float32), np.ones((res // cells, res // cells), np.float32))
    big = np.pad(big, 2)
    return np.clip(blur(big, 0.8), 0.0, 1.0)


def make_script(
    rng: np.random.Generator, n: int = 24, res: tuple[int, int] = (32, 24)
) -> list[np.ndarray]:
    """An invented alphabet of stroke letters (legends, inscriptions): each h x w in [0, 1]."""
    h, w = res
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    nodes = np.array([(x, y) for y in (0.15, 0.5, 0.85) for x in (0.2, 0.8)] + [(0.5, 0.5)])
    glyphs = []
    for _ in range(n):
        cov = np.zeros((h, w), np.float32)
        for _ in range(rng.integers(2, 5)):
            a, b = nodes[rng.choice(len(nodes), 2, replace=False)]
            ax, ay, bx, by = a[0] * w, a[1] * h, b[0] * w, b[1] * h
            dx, dy = bx - ax, by - ay
            t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-6), 0, 1)
            d = np.hypot(xx - ax - t * dx, yy - ay - t * dy)
            cov = np.maximum(cov, line(d, 0.09 * w, 1.0))
        glyphs.append(cov)
    return glyphs


@dataclass
class Silhouette:
    """A figure of ellipses (cx, cy, rx, ry, angle) in a unit cell: x in [-.5, .5], y in [0, 1]."""

    ellipses: list[tuple[float, float, float, float, float]]

    def coverage(self, x: np.ndarray, y: np.ndarray, aa: float = 0.04) -> np.ndarray:
        best = np.full(np.shape(x), 9.0, dtype=np.float32)
        for cx, cy, rx, ry, ang in self.ellipses:
            c, s = np.cos(ang), np.sin(ang)
            dx, dy = x - cx, y - cy
            lx = (c * dx + s * dy) / rx
            ly = (-s * dx + c * dy) / ry
            best = np.minimum(best, np.sqrt(lx * lx + ly * ly))
        return 1.0 - smoothstep(1.0 - aa * 4, 1.0 + aa * 4, best)


def make_silhouette(rng: np.random.Generator, kind: str | None = None) -> Silhouette:
    """A stylised animal, bird or human, as painted on black-figure pots or cast on coins."""
    kind = kind or str(rng.choice(["animal", "human", "bird"]))
    j = lambda s: float(rng.uniform(1 - s, 1 + s))  # noqa: E731 - tiny local jitter helper
    face = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "animal":
        body_y = 0.5 * j(0.1)
        e = [(0.0, body_y, 0.3 * j(0.15), 0.12 * j(0.2), 0.0)]
        e.append((face * 0.3 * j(0.1), body_y + 0.15 * j(0.3), 0.08 * j(0.2), 0.06, face * 0.5))
        e.append((face * 0.38, body_y + 0.2 * j(0.2), 0.07 * j(0.2), 0.05, 0.0))
        for lx in (-0.2, -0.12, 0.12, 0.2):
            e.append((lx * j(0.2), body_y * 0.45, 0.025, body_y * 0.45, rng.normal(0, 0.15)))
        e.append((-face * 0.32, body_y + 0.02, 0.12 * j(0.3), 0.02, -face * rng.uniform(0.3, 1.2)))
    elif kind == "bird":
        e = [(0.0, 0.45, 0.2 * j(0.2), 0.12 * j(0.2), face * 0.3)]
        e.append((face * 0.18, 0.62 * j(0.08), 0.07, 0.07, 0.0))
        e.append((face * 0.27, 0.62, 0.05, 0.015, 0.0))
        e.append((-face * 0.22, 0.4, 0.14 * j(0.3), 0.03, -face * 0.5))
        e.append((0.0, 0.55, 0.2 * j(0.3), 0.05, -face * rng.uniform(0.3, 0.9)))
        e.append((0.03, 0.18, 0.015, 0.15, 0.0))
    else:
        lean = rng.normal(0, 0.1)
        e = [(lean * 0.3, 0.55, 0.09 * j(0.2), 0.2 * j(0.1), lean)]
        e.append((lean * 0.6, 0.85 * j(0.04), 0.065, 0.075, 0.0))
        e.append((0.05 * face, 0.2, 0.035, 0.2, 0.15 * face * j(0.5)))
        e.append((-0.05 * face, 0.2, 0.035, 0.2, -0.2 * face * j(0.5)))
        for sgn in (-1, 1):
            e.append((sgn * 0.14, 0.6, 0.03, 0.17 * j(0.2), sgn * rng.uniform(0.2, 1.4)))
        if rng.random() < 0.5:  # spear or staff
            e.append((face * 0.22, 0.5, 0.012, 0.45, face * 0.1))
    return Silhouette(e)


# ---------------------------------------------------------------------------------------------
# Bands of ornament around lathe-turned objects
# ---------------------------------------------------------------------------------------------

BORDER_MOTIFS = (
    "lines",
    "zigzag",
    "wave",
    "petals",
    "dots",
    "rings",
    "checker",
    "hatch",
    "glyph",
    "scales",
)
MAIN_MOTIFS = ("scroll", "panels", "figures", "glyph", "petals", "scales", "hatch")


@dataclass
class Band:
    """One decorated zone: `t` from t0 to t1 (height on the wall, or radius on a dish)."""

    t0: float
    t1: float
    motif: str
    colour: int
    repeats: int
    phase: float
    width: float
    filled: bool
    glyph: np.ndarray | None = None
    silhouettes: list[Silhouette] = field(default_factory=list)
    waves: np.ndarray | None = None  # (k, 4) integer frequency, vertical freq, phase, amplitude

    def coverage(self, theta: np.ndarray, t: np.ndarray, aspect: np.ndarray) -> np.ndarray:
        """Coverage inside the band. `aspect` = physical width / height of one repeat."""
        inside = (t >= self.t0) & (t <= self.t1)
        if not np.any(inside):
            return np.zeros(np.shape(t), np.float32)
        b = (t - self.t0) / (self.t1 - self.t0)
        a = np.mod(theta / TAU * self.repeats + self.phase, 1.0)
        w = self.width
        m = self.motif
        if m == "lines":
            cov = line(b, w) + line(1.0 - b, w)
            if self.filled:
                cov = cov + line(np.abs(b - 0.5), w * 0.6)
        elif m == "zigzag":
            centre = 0.15 + 0.7 * (1.0 - np.abs(2.0 * a - 1.0))
            cov = line(np.abs(b - centre) / np.sqrt(1 + (1.4 / np.maximum(aspect, 0.2)) ** 2), w)
            if self.filled:
                cov = np.maximum(cov, (b < centre) * 0.9)
        elif m == "wave":
            centre = 0.5 + 0.3 * np.sin(TAU * a)
            cov = line(np.abs(b - centre) / np.sqrt(1 + (1.9 / np.maximum(aspect, 0.2)) ** 2), w)
        elif m == "petals":
            x = 2.0 * a - 1.0
            top = 0.92 * np.clip(1.0 - x * x, 0, 1) ** 0.55
            cov = line(np.abs(b - top), w) * (b < 0.99)
            if self.filled:
                cov = np.maximum(cov, (b < top * 0.7).astype(np.float32) * 0.85)
            else:
                cov = np.maximum(cov, line(np.abs(x) * aspect, w * 0.5) * (b < top))
        elif m in ("dots", "rings"):
            r = np.hypot((a - 0.5) * aspect, b - 0.5)
            rad = 0.28
            cov = line(r, rad, 0.04) if m == "dots" else line(np.abs(r - rad), w)
            if self.filled and m == "rings":
                cov = np.maximum(cov, line(r, rad * 0.35, 0.04))
        elif m == "checker":
            cov = ((np.floor(2 * a) + np.floor(2 * b)) % 2).astype(np.float32)
        elif m == "hatch":
            k = 3.0
            cov = line(np.abs(np.mod((a * aspect + b) * k, 1.0) - 0.5), w * 2.2)
            if self.filled:
                cov = np.maximum(
                    cov, line(np.abs(np.mod((a * aspect - b) * k, 1.0) - 0.5), w * 2.2)
                )
        elif m == "scales":
            row = np.floor(b * 3.0)
            aa = np.mod(a * 2.0 + 0.5 * row, 1.0)
            bb = np.mod(b * 3.0, 1.0)
            r = np.hypot((aa - 0.5) * aspect * 1.5, bb)
            cov = line(np.abs(r - 0.55), w * 1.5) * (bb < 0.75)
        elif m == "glyph" and self.glyph is not None:
            g = self.glyph
            cov = sample_bilinear(g, a * g.shape[1], (1.0 - b) * g.shape[0])
        elif m == "panels":
            x = (a - 0.5) * aspect
            y = b - 0.5
            half_w = 0.38 * aspect
            d = np.maximum(np.abs(x) - half_w, np.abs(y) - 0.4)
            cov = line(np.abs(d + 0.03), w)
            if self.glyph is not None:
                g = self.glyph
                gx = (x / (half_w * 1.5) + 0.5) * g.shape[1]
                gy = (0.5 - y / 0.6) * g.shape[0]
                ok = (np.abs(x) < half_w * 0.75) & (np.abs(y) < 0.3)
                cov = np.maximum(cov, sample_bilinear(g, gx, gy) * ok)
        elif m == "figures" and self.silhouettes:
            idx = np.floor(np.mod(theta / TAU * self.repeats + self.phase, self.repeats)).astype(
                int
            )
            x = (a - 0.5) * aspect
            cov = np.zeros(np.shape(t), np.float32)
            for k, sil in enumerate(self.silhouettes):
                sel = (idx % len(self.silhouettes)) == k
                if np.any(sel & inside):
                    cov = np.where(sel, sil.coverage(x * 1.1, b * 1.05 - 0.02), cov)
        elif m == "scroll" and self.waves is not None:
            f = np.zeros(np.shape(t), np.float32)
            hb = aspect * self.repeats / TAU  # converts band height to the theta scale
            for kx, ky, ph, amp in self.waves:
                f += amp * np.sin(kx * theta + ky * b * TAU / np.maximum(hb, 0.3) * 0.5 + ph)
            cov = line(np.abs(f), w * 2.0, 0.04)
            if self.filled:
                cov = np.maximum(cov, smoothstep(0.55, 0.62, f) * 0.9)
            cov = cov * smoothstep(0.0, 0.04, b) * smoothstep(1.0, 0.96, b)
        else:
            cov = np.zeros(np.shape(t), np.float32)
        return np.clip(cov, 0.0, 1.0) * inside


def random_bands(
    rng: np.random.Generator,
    n_colours: int,
    main_motifs: tuple[str, ...],
    border_motifs: tuple[str, ...],
    height: float,
    density: float = 1.0,
) -> list[Band]:
    """An arrangement of borders and main friezes down a wall of physical `height`.

    The style supplies the repertoire; this object's generator picks the layout, motif per
    band, repeat count, line weight, tile glyph, figures and colour -- the "different pattern"
    that is all that separates two pots of one ware.
    """
    n_main = 1 if rng.random() < 0.7 else 2
    n_border = int(rng.integers(1, 4))
    kinds = ["main"] * n_main + ["border"] * n_border
    rng.shuffle(kinds)
    weights = np.array(
        [rng.uniform(2.0, 3.5) if k == "main" else rng.uniform(0.6, 1.2) for k in kinds]
    )
    gaps = rng.uniform(0.15, 0.5, len(kinds) + 1)
    total = weights.sum() + gaps.sum()
    span = rng.uniform(0.72, 0.92) * density
    start = rng.uniform(0.02, 0.98 - span)
    bands, pos = [], start + gaps[0] / total * span
    for k, kind in enumerate(kinds):
        h = weights[k] / total * span
        motif = str(rng.choice(main_motifs if kind == "main" else border_motifs))
        band_h = max(h * height, 1e-3)
        repeats = int(
            np.clip(
                round(rng.uniform(1.6, 5.0) / band_h * 0.25 * (1.0 if kind == "border" else 2.2)),
                3,
                48,
            )
        )
        band = Band(
            t0=pos,
            t1=pos + h,
            motif=motif,
            colour=int(rng.integers(0, n_colours)),
            repeats=repeats,
            phase=float(rng.random()),
            width=float(rng.uniform(0.04, 0.09)),
            filled=bool(rng.random() < 0.5),
        )
        if motif in ("glyph", "panels"):
            band.glyph = make_glyph(rng, cells=int(rng.choice([3, 5, 7])), symmetric=True)
        if motif == "figures":
            band.silhouettes = [make_silhouette(rng) for _ in range(int(rng.integers(1, 4)))]
            band.repeats = int(np.clip(band.repeats // 2, 3, 10))
        if motif == "scroll":
            nw = int(rng.integers(2, 5))
            band.waves = np.stack(
                [
                    rng.integers(2, 9, nw),
                    rng.uniform(-1.5, 1.5, nw),
                    rng.uniform(0, TAU, nw),
                    rng.uniform(0.3, 1.0, nw),
                ],
                axis=1,
            )
            band.waves[:, 3] /= band.waves[:, 3].sum()
        bands.append(band)
        pos += h + gaps[k + 1] / total * span
    if rng.random() < 0.6:  # fine lines framing the decoration
        for edge in (bands[0].t0, bands[-1].t1):
            bands.append(
                Band(edge - 0.008, edge + 0.008, "lines", bands[0].colour, 1, 0.0, 0.35, True)
            )
    return bands


# ---------------------------------------------------------------------------------------------
# Flat relief designs (coin faces, tablet faces), on a square grid over [-1, 1]^2
# ---------------------------------------------------------------------------------------------


def _grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(res, dtype=np.float32) + 0.5) / res * 2.0 - 1.0
    x, y = np.meshgrid(c, -c)  # y up
    return x, y


def _ellipse(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, aa: float = 0.01
) -> np.ndarray:
    d = np.hypot((x - cx) / rx, (y - cy) / ry)
    return 1.0 - smoothstep(1.0 - aa / min(rx, ry), 1.0 + aa / min(rx, ry), d)


def place_glyph(g: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample glyph `g` over local coords x, y in [0, 1] (y up); zero outside."""
    ok = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
    return sample_bilinear(g, x * g.shape[1], (1.0 - y) * g.shape[0]) * ok


def coin_face(
    rng: np.random.Generator, design: str, script: list[np.ndarray], res: int = 256
) -> np.ndarray:
    """Height map (0 = field, ~1 = highest relief) of one coin face: border, legend, device."""
    x, y = _grid(res)
    r = np.hypot(x, y)
    phi = np.arctan2(x, -y)  # 0 at the bottom, increasing clockwise (legends read clockwise)
    h = np.zeros((res, res), np.float32)
    if rng.random() < 0.6:  # beaded border
        n = int(rng.integers(40, 70))
        k = np.round(phi / TAU * n)
        ang = k / n * TAU
        d = np.hypot(x - 0.9 * np.sin(ang), y + 0.9 * np.cos(ang))
        h = np.maximum(h, line(d, 0.028, 0.012) * 0.7)
    else:
        h = np.maximum(h, line(np.abs(r - 0.9), 0.02, 0.01) * 0.6)
    inner = 0.64
    if design != "inscription" and rng.random() < 0.85:  # legend round the device
        n = int(rng.integers(12, 22))
        gap = rng.uniform(0.1, 0.25) * TAU
        start = gap / 2.0
        pos = (phi % TAU - start) / (TAU - gap) * n
        k = np.floor(pos).astype(int)
        text = rng.integers(0, len(script), n)
        local_x = pos - k
        local_y = (r - 0.68) / 0.16
        ok = (pos >= 0) & (pos < n)
        leg = np.zeros_like(h)
        for i in range(n):
            sel = ok & (k == i)
            if np.any(sel):
                leg[sel] = place_glyph(script[text[i]], local_x[sel] * 1.25 - 0.12, local_y[sel])
        h = np.maximum(h, leg * 0.55)
    else:
        inner = 0.84
    s = inner / 0.64
    if design == "portrait":
        face = 1.0 if rng.random() < 0.5 else -1.0
        j = lambda v: float(v * rng.uniform(0.85, 1.15))  # noqa: E731
        m = _ellipse(x, y, -face * 0.04 * s, 0.1 * s, j(0.26) * s, j(0.29) * s)
        m = np.maximum(m, _ellipse(x, y, face * 0.14 * s, 0.02 * s, j(0.14) * s, j(0.22) * s))
        m = np.maximum(m, _ellipse(x, y, face * 0.27 * s, 0.06 * s, 0.05 * s, j(0.035) * s))
        m = np.maximum(m, _ellipse(x, y, face * 0.02 * s, -0.28 * s, j(0.13) * s, j(0.2) * s))
        m = np.maximum(m, _ellipse(x, y, 0.0, -0.5 * s, j(0.34) * s, 0.12 * s) * (r < inner))
        dome = blur(m, res * 0.025)
        hair = _ellipse(x, y, -face * 0.08 * s, 0.18 * s, 0.24 * s, 0.22 * s)
        curls = 0.5 + 0.5 * np.sin(x * 60 + np.sin(y * 40) * 2) * np.sin(y * 55)
        eye = _ellipse(x, y, face * 0.18 * s, 0.1 * s, 0.025 * s, 0.018 * s)
        dev = dome * 1.1 + hair * curls * 0.15 - eye * 0.2
        if rng.random() < 0.6:  # wreath ties
            for dy in (0.03, -0.05):
                dev += (
                    line(np.abs(y - dy * s + (x + face * 0.2 * s) * 0.6), 0.012, 0.01)
                    * (np.abs(x + face * 0.3 * s) < 0.1 * s)
                    * 0.5
                )
        h = np.maximum(h, dev * (r < inner))
    elif design == "creature":
        sil = make_silhouette(rng)
        m = sil.coverage(x / (1.25 * inner), (y / (1.25 * inner)) + 0.5, aa=0.01)
        h = np.maximum(h, blur(m, res * 0.012) * 1.0)
        if rng.random() < 0.5:  # exergue line
            h = np.maximum(
                h, line(np.abs(y + 0.5 * inner), 0.012, 0.008) * (np.abs(x) < 0.55) * 0.6
            )
    elif design == "emblem":
        g = make_glyph(rng, cells=int(rng.choice([5, 7])), res=56, symmetric=True)
        m = place_glyph(g, x / (1.3 * inner) + 0.5, y / (1.3 * inner) + 0.5)
        h = np.maximum(h, blur(m, res * 0.008) * 0.9)
    else:  # inscription in rows
        rows = int(rng.integers(3, 6))
        row_h = 1.3 * inner / rows
        for i in range(rows):
            y0 = 0.65 * inner - (i + 1) * row_h
            half = np.sqrt(max(inner**2 - (y0 + row_h / 2) ** 2, 0.01)) * 0.9
            n = max(2, int(2 * half / (row_h * 0.75)))
            gx = (x + half) / (2 * half) * n
            k = np.floor(gx).astype(int)
            band = (y >= y0) & (y < y0 + row_h) & (gx >= 0) & (gx < n)
            text = rng.integers(0, len(script), n)
            for c in range(n):
                sel = band & (k == c)
                if np.any(sel):
                    h[sel] = np.maximum(
                        h[sel],
                        place_glyph(script[text[c]], gx[sel] - c, (y[sel] - y0) / row_h) * 0.6,
                    )
            h = np.maximum(h, line(np.abs(y - y0), 0.006, 0.006) * (np.abs(x) < half) * 0.4)
    return blur(h, res / 256.0 * 0.7)


def tablet_face(
    rng: np.random.Generator, design: str, script: list[np.ndarray], aspect: float, res: int = 256
) -> np.ndarray:
    """Height map of a tablet or plaque face over [-1, 1]^2 (x scaled by `aspect` = w / h).

    Negative values are incised (cuneiform wedges, carved script), positive values raised.
    """
    x, y = _grid(res)
    xs = x * aspect
    h = np.zeros((res, res), np.float32)
    margin = rng.uniform(0.08, 0.16)
    if design == "cuneiform":
        rows = int(rng.integers(6, 14))
        row_h = (2.0 - 2 * margin) / rows
        cell = row_h * rng.uniform(0.6, 0.9)
        ry = (1.0 - margin - y) / row_h
        k = np.floor(ry)
        ly = (ry - k - 0.5) * row_h
        cx = (xs + aspect - margin) / cell
        kc = np.floor(cx)
        lx = (cx - kc - 0.5) * cell
        ok = (k >= 0) & (k < rows) & (cx >= 0) & (xs < aspect - margin)
        lines_ = (
            line(np.abs(ly + row_h / 2), 0.006, 0.005)
            * (k >= 0)
            * (k <= rows)
            * (np.abs(xs) < aspect - margin)
        )
        table = rng.integers(0, 5, size=(rows + 1, int(2 * aspect / cell) + 3))
        lengths = np.where(rng.random(table.shape) < 0.2, 0, rng.uniform(0.4, 0.95, table.shape))
        ki = np.clip(k, 0, rows).astype(int)
        kci = np.clip(kc, 0, table.shape[1] - 1).astype(int)
        orient = table[ki, kci]
        length = lengths[ki, kci] * cell
        ang = np.choose(orient, [0.0, -np.pi / 2, np.pi / 4, -np.pi / 4, 0.0])
        c, s = np.cos(ang), np.sin(ang)
        u = (c * lx + s * ly) + cell * 0.4
        v = -s * lx + c * ly
        head = (u > 0) & (u < cell * 0.3) & (np.abs(v) < (cell * 0.3 - u) * 0.9)
        tail = (u > 0) & (u < length) & (np.abs(v) < cell * 0.045)
        wedge = (head | tail) & ok & (length > 0)
        h -= blur(wedge.astype(np.float32), res / 256.0 * 0.8) * 0.9
        h -= lines_ * 0.35
    else:
        frame = np.maximum(np.abs(xs) - (aspect - margin), np.abs(y) - (1.0 - margin))
        h += smoothstep(0.0, -0.03, frame) * 0.5  # raised field edge
        h -= smoothstep(-0.02, -0.05, frame) * 0.5
        if design == "relief":
            n = int(rng.integers(1, 4))
            for i in range(n):
                sil = make_silhouette(rng)
                w = 2 * (aspect - margin) / n
                cxs = -aspect + margin + w * (i + 0.5)
                m = sil.coverage(
                    (xs - cxs) / (w * 0.95), (y + 1.0 - margin) / (1.6 - margin), aa=0.01
                )
                h += blur(m, res * 0.01) * 0.9
        rows = int(rng.integers(2, 5)) if design == "relief" else int(rng.integers(6, 11))
        top = (1.0 - margin) if design != "relief" else -0.6
        row_h = 0.14 if design == "relief" else (2.0 - 2.5 * margin) / rows
        for i in range(rows if design != "relief" else 1):
            y0 = top - (i + 1) * row_h
            n = max(3, int(2 * (aspect - margin) / (row_h * 0.7)))
            gx = (xs + aspect - margin) / (2 * (aspect - margin)) * n
            kk = np.floor(gx).astype(int)
            band = (y >= y0) & (y < y0 + row_h) & (gx >= 0) & (gx < n)
            text = rng.integers(0, len(script), n)
            for c in range(n):
                sel = band & (kk == c)
                if np.any(sel):
                    h[sel] -= place_glyph(script[text[c]], gx[sel] - c, (y[sel] - y0) / row_h) * 0.5
    return h


# ---------------------------------------------------------------------------------------------
# Finishes: glaze wear, crackle, bronze patina, stone and clay surfaces
# ---------------------------------------------------------------------------------------------


def crackle(noise: Noise3, pos: np.ndarray, freq: float) -> np.ndarray:
    """A net of fine cracks (ridged noise) as in crackled celadon glaze: 0 .. 1."""
    n = noise.value(pos * freq) * 0.65 + noise.value(pos * freq * 2.3 + 3.1) * 0.35
    return line(np.abs(n - 0.5), 0.018, 0.01)


def bronze_finish(
    noise: Noise3,
    pos: np.ndarray,
    height: np.ndarray,
    metal_rgb: np.ndarray,
    patina_rgb: list[np.ndarray],
    amount: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patinated bronze: crusty green/brown where recessed, polished metal on high points.

    Returns (albedo sRGB, gloss, metalness).
    """
    n1 = noise.fbm(pos, 4.0, 4)
    n2 = noise.fbm(pos + 11.0, 9.0, 3)
    relief = height / max(float(np.abs(height).max()), 1e-6)
    cover = smoothstep(0.4, 0.7, n1 * amount + 0.2 - 0.45 * np.clip(relief, 0, 1))
    patina = patina_rgb[0] * (1 - n2[..., None]) + patina_rgb[1 % len(patina_rgb)] * n2[..., None]
    if len(patina_rgb) > 2:
        spots = smoothstep(0.72, 0.8, noise.fbm(pos + 5.0, 14.0, 2))[..., None]
        patina = patina * (1 - spots) + patina_rgb[2] * spots
    albedo = metal_rgb * (1 - cover[..., None]) + patina * cover[..., None]
    albedo *= (0.85 + 0.3 * noise.fbm(pos + 2.0, 20.0, 2))[..., None]
    gloss = 0.85 * (1 - cover) + 0.12 * cover
    metal = 1.0 - cover
    return albedo.astype(np.float32), gloss.astype(np.float32), metal.astype(np.float32)


def stains(noise: Noise3, pos: np.ndarray, amount: float) -> np.ndarray:
    """Multiplicative grime and discolouration (1 = clean)."""
    n = noise.fbm(pos + 31.0, 3.0, 4)
    return (1.0 - amount * 0.35 * smoothstep(0.45, 0.8, n)).astype(np.float32)

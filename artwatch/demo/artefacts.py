"""Procedurally generated museum objects: specs (accession number, title, photo count) and models.

A generated object is a pure function of (seed, stream, index): the catalogue writer, the
listing simulator and the distractor generator all rebuild the same object from those three
numbers, whatever number of objects was requested. Stream 0 is the catalogue; distractors use
stream 1, a disjoint index space drawn from the same collections and styles, so a correct
system has to tell "same ware, different object" apart -- exactly the hard case in a real
museum, where a department holds hundreds of near-identical blue-and-white jars.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .geometry import (
    BASE,
    INNER,
    LIP,
    OUTER,
    Material,
    Mesh,
    Part,
    Surface,
    build_mesh,
    lathe,
    slab_profile,
    superellipse_flan,
    superquadric,
    transformed,
    tube_arc,
)
from .noise import Noise3, blur, jitter_colour, matvec, sample_bilinear, smoothstep, srgb_to_linear
from .patterns import (
    BORDER_MOTIFS,
    MAIN_MOTIFS,
    TAU,
    Band,
    bronze_finish,
    coin_face,
    crackle,
    line,
    make_glyph,
    make_script,
    make_silhouette,
    place_glyph,
    random_bands,
    stains,
    tablet_face,
)

CATALOGUE_STREAM = 0
DISTRACTOR_STREAM = 1

# Photos per object, Winterbottom et al. 2022, Table 2a (the last bucket is "10 or more").
PHOTO_COUNTS = (3, 4, 5, 6, 7, 8, 9, 10)
PHOTO_SHARES = (0.23, 0.20, 0.09, 0.24, 0.12, 0.05, 0.02, 0.06)

RGB = tuple[float, float, float]

# Studio backdrops (sRGB): sweeps of paper or cloth used in museum photography.
BACKDROPS: dict[str, RGB] = {
    "white": (0.94, 0.94, 0.93),
    "light grey": (0.80, 0.80, 0.80),
    "mid grey": (0.56, 0.57, 0.58),
    "charcoal": (0.22, 0.22, 0.23),
    "black": (0.06, 0.06, 0.06),
    "beige": (0.86, 0.82, 0.74),
    "blue grey": (0.70, 0.74, 0.78),
}


@dataclass(frozen=True)
class Ware:
    """A style within a collection: what its objects share (palette, finish, shapes, motifs)."""

    name: str
    title: str
    kinds: tuple[tuple[str, str, float], ...]  # (family, kind, weight)
    finish: str
    body: RGB
    colours: tuple[RGB, ...]
    gloss: float
    material: Material
    periods: tuple[str, ...]
    decorations: tuple[str, ...]
    main_motifs: tuple[str, ...] = MAIN_MOTIFS
    border_motifs: tuple[str, ...] = BORDER_MOTIFS


@dataclass(frozen=True)
class Collection:
    """A museum department with its accession prefix and its usual photographic backdrops."""

    name: str
    prefix: str
    weight: float
    wares: tuple[tuple[Ware, float], ...]
    backdrops: tuple[str, ...]


GLAZE = Material(shininess=90.0, specular=0.55, sheen=0.25)
SATIN = Material(shininess=25.0, specular=0.25, sheen=0.3)
MATTE = Material(shininess=10.0, specular=0.08, sheen=0.1)
METAL = Material(shininess=45.0, specular=0.8, metal=1.0, sheen=0.4, bump=1.0)
STONE = Material(shininess=20.0, specular=0.15, sheen=0.15, bump=1.2)
JADE = Material(shininess=70.0, specular=0.5, sheen=0.3)

VESSEL_KINDS = (
    ("vessel", "vase", 3.0),
    ("vessel", "jar", 2.0),
    ("vessel", "bowl", 2.0),
    ("vessel", "cup", 1.0),
    ("plate", "dish", 2.0),
)

CERAMICS = Collection(
    "ceramics",
    "CER",
    0.34,
    (
        (
            Ware(
                "blue-white",
                "blue-and-white porcelain",
                VESSEL_KINDS,
                "painted",
                (0.92, 0.93, 0.93),
                ((0.12, 0.2, 0.52), (0.26, 0.38, 0.68)),
                0.9,
                GLAZE,
                (
                    "Ming dynasty",
                    "Qing dynasty, Kangxi period",
                    "Qing dynasty, Qianlong period",
                    "Jingdezhen, 18th century",
                ),
                (
                    "lotus scroll",
                    "floral panels",
                    "key-fret borders",
                    "waves and clouds",
                    "a dragon among clouds",
                ),
                main_motifs=("scroll", "panels", "glyph", "petals", "scales"),
            ),
            0.35,
        ),
        (
            Ware(
                "celadon",
                "celadon-glazed stoneware",
                VESSEL_KINDS,
                "incised",
                (0.58, 0.69, 0.58),
                ((0.47, 0.6, 0.5),),
                0.85,
                GLAZE,
                ("Song dynasty", "Longquan, Southern Song", "Goryeo dynasty", "Yuan dynasty"),
                ("incised peony scroll", "combed waves", "carved lotus petals", "crackled glaze"),
                main_motifs=("scroll", "petals", "scales", "hatch"),
            ),
            0.2,
        ),
        (
            Ware(
                "black-figure",
                "black-figure earthenware",
                (
                    ("vessel", "amphora", 3.0),
                    ("vessel", "jar", 1.0),
                    ("vessel", "cup", 1.5),
                    ("plate", "dish", 0.8),
                ),
                "painted",
                (0.78, 0.44, 0.24),
                ((0.09, 0.07, 0.06), (0.45, 0.15, 0.08)),
                0.55,
                SATIN,
                ("Attic, 6th century BC", "Corinthian, 7th century BC", "Etruscan, 5th century BC"),
                (
                    "a frieze of animals",
                    "warriors and horsemen",
                    "palmette and lotus borders",
                    "a procession",
                ),
                main_motifs=("figures", "figures", "panels", "petals"),
            ),
            0.2,
        ),
        (
            Ware(
                "slip",
                "slip-painted earthenware",
                (
                    ("vessel", "jar", 3.0),
                    ("vessel", "bowl", 2.0),
                    ("vessel", "cup", 1.0),
                    ("vessel", "vase", 1.0),
                ),
                "painted",
                (0.78, 0.66, 0.5),
                ((0.45, 0.17, 0.09), (0.16, 0.11, 0.09)),
                0.12,
                MATTE,
                ("Neolithic, Yangshao culture", "Bronze Age", "Iron Age", "Majiayao culture"),
                ("spirals and wavy bands", "net pattern", "concentric lines", "stylised birds"),
                main_motifs=("scroll", "hatch", "glyph", "figures"),
            ),
            0.15,
        ),
        (
            Ware(
                "monochrome",
                "monochrome-glazed porcelain",
                VESSEL_KINDS,
                "incised",
                (0.62, 0.12, 0.1),
                ((0.5, 0.08, 0.07),),
                0.95,
                GLAZE,
                ("Qing dynasty, Yongzheng period", "Qing dynasty", "Republic period"),
                ("copper-red glaze", "incised dragons", "faint floral scroll"),
                main_motifs=("scroll", "petals", "glyph"),
            ),
            0.1,
        ),
    ),
    ("white", "light grey", "mid grey", "blue grey"),
)

BRONZES = Collection(
    "bronzes",
    "BRZ",
    0.2,
    (
        (
            Ware(
                "verdigris",
                "bronze",
                (
                    ("vessel", "ding", 2.0),
                    ("vessel", "gu", 1.5),
                    ("vessel", "hu", 1.5),
                    ("vessel", "basin", 1.0),
                    ("figurine", "seated", 1.0),
                ),
                "bronze",
                (0.6, 0.43, 0.24),
                ((0.33, 0.52, 0.42), (0.42, 0.58, 0.5), (0.55, 0.25, 0.15)),
                0.6,
                METAL,
                ("Shang dynasty", "Western Zhou", "Eastern Zhou, Warring States", "Han dynasty"),
                ("taotie masks", "cloud-and-thunder ground", "kui dragons", "raised bands"),
                main_motifs=("glyph", "panels", "scroll"),
                border_motifs=("glyph", "lines", "hatch", "zigzag", "rings"),
            ),
            0.6,
        ),
        (
            Ware(
                "brown-patina",
                "bronze with brown patina",
                (
                    ("vessel", "hu", 1.0),
                    ("vessel", "basin", 1.0),
                    ("figurine", "standing", 1.5),
                    ("figurine", "seated", 1.5),
                    ("figurine", "horse", 1.0),
                ),
                "bronze",
                (0.62, 0.45, 0.26),
                ((0.3, 0.2, 0.13), (0.22, 0.16, 0.1), (0.35, 0.45, 0.35)),
                0.6,
                METAL,
                ("Tibet, 17th century", "Nepal, 15th century", "Roman", "Luristan, Iron Age"),
                ("incised robe", "gilt traces", "lotus base", "inlaid eyes"),
                main_motifs=("glyph", "panels", "scroll"),
                border_motifs=("glyph", "lines", "dots", "rings"),
            ),
            0.4,
        ),
    ),
    ("mid grey", "charcoal", "black", "white"),
)

FIGURINES = Collection(
    "figurines",
    "FIG",
    0.2,
    (
        (
            Ware(
                "sancai",
                "sancai-glazed earthenware",
                (
                    ("figurine", "horse", 2.0),
                    ("figurine", "standing", 2.0),
                    ("figurine", "bird", 1.0),
                ),
                "sancai",
                (0.9, 0.84, 0.68),
                ((0.78, 0.5, 0.16), (0.32, 0.5, 0.26), (0.9, 0.84, 0.68)),
                0.8,
                GLAZE,
                ("Tang dynasty", "Liao dynasty"),
                ("amber and green glazes", "splashed glazes", "straw glaze"),
            ),
            0.35,
        ),
        (
            Ware(
                "painted-pottery",
                "painted pottery",
                (
                    ("figurine", "standing", 3.0),
                    ("figurine", "seated", 1.5),
                    ("figurine", "horse", 1.5),
                ),
                "terracotta",
                (0.72, 0.52, 0.4),
                ((0.86, 0.83, 0.76), (0.66, 0.16, 0.1), (0.12, 0.1, 0.1)),
                0.1,
                MATTE,
                ("Han dynasty", "Northern Wei", "Tang dynasty", "Tanagra, Hellenistic"),
                ("cold-painted pigments", "white slip", "red robe"),
            ),
            0.35,
        ),
        (
            Ware(
                "jade",
                "jade carving",
                (
                    ("figurine", "bird", 2.0),
                    ("figurine", "horse", 1.0),
                    ("figurine", "seated", 1.0),
                ),
                "jade",
                (0.5, 0.63, 0.45),
                ((0.62, 0.72, 0.55), (0.5, 0.38, 0.22)),
                0.8,
                JADE,
                ("Qing dynasty", "Ming dynasty", "Liangzhu culture"),
                ("russet skin", "mottled stone", "polished surface"),
            ),
            0.15,
        ),
        (
            Ware(
                "wood",
                "carved and lacquered wood",
                (("figurine", "standing", 2.0), ("figurine", "seated", 1.0)),
                "wood",
                (0.48, 0.32, 0.2),
                ((0.36, 0.22, 0.13), (0.62, 0.2, 0.12)),
                0.35,
                SATIN,
                ("Edo period", "Ming dynasty", "Kamakura period"),
                ("lacquer traces", "carved robes", "polychrome"),
            ),
            0.15,
        ),
    ),
    ("white", "light grey", "beige", "charcoal"),
)

COINS = Collection(
    "coins",
    "NUM",
    0.16,
    (
        (
            Ware(
                "silver",
                "silver coin",
                (
                    ("coin", "portrait", 3.0),
                    ("coin", "creature", 2.0),
                    ("coin", "inscription", 1.0),
                ),
                "silver",
                (0.64, 0.64, 0.62),
                ((0.35, 0.33, 0.3), (0.55, 0.48, 0.4)),
                0.8,
                METAL,
                ("Athens, 5th century BC", "Roman Republic", "Sasanian", "Umayyad caliphate"),
                ("head of a ruler", "owl", "legend", "inscription"),
            ),
            0.45,
        ),
        (
            Ware(
                "bronze-coin",
                "copper-alloy coin",
                (("coin", "portrait", 3.0), ("coin", "emblem", 2.0), ("coin", "inscription", 1.0)),
                "bronze-coin",
                (0.55, 0.38, 0.22),
                ((0.3, 0.42, 0.32), (0.28, 0.2, 0.14)),
                0.6,
                METAL,
                ("Roman Imperial", "Byzantine", "Kushan", "Late Roman"),
                ("emperor's bust", "emblem", "legend"),
            ),
            0.4,
        ),
        (
            Ware(
                "gold",
                "gold coin",
                (("coin", "portrait", 2.0), ("coin", "inscription", 2.0), ("coin", "emblem", 1.0)),
                "gold",
                (0.86, 0.68, 0.32),
                ((0.6, 0.45, 0.2), (0.7, 0.5, 0.25)),
                0.9,
                METAL,
                ("Byzantine", "Abbasid", "Gupta empire"),
                ("solidus", "dinar", "standing king"),
            ),
            0.15,
        ),
    ),
    ("black", "mid grey", "white", "blue grey"),
)

TABLETS = Collection(
    "tablets",
    "TAB",
    0.1,
    (
        (
            Ware(
                "clay-tablet",
                "clay tablet",
                (("tablet", "cuneiform", 1.0),),
                "clay",
                (0.72, 0.58, 0.42),
                ((0.55, 0.42, 0.3), (0.56, 0.43, 0.31)),
                0.08,
                STONE,
                ("Old Babylonian", "Ur III", "Neo-Assyrian"),
                ("cuneiform text", "administrative record", "letter"),
            ),
            0.55,
        ),
        (
            Ware(
                "stone-relief",
                "carved stone",
                (("tablet", "relief", 1.5), ("tablet", "stele", 1.0)),
                "stone",
                (0.8, 0.77, 0.68),
                ((0.6, 0.58, 0.54), (0.45, 0.42, 0.38)),
                0.15,
                STONE,
                ("Gandhara, 2nd century", "Egyptian, New Kingdom", "Palmyra, 2nd century"),
                ("relief figures", "inscription", "funerary text"),
            ),
            0.45,
        ),
    ),
    ("light grey", "mid grey", "beige", "white"),
)

COLLECTIONS: tuple[Collection, ...] = (CERAMICS, BRONZES, FIGURINES, COINS, TABLETS)
COLLECTIONS_BY_NAME = {c.name: c for c in COLLECTIONS}
WARES: dict[str, Ware] = {w.name: w for c in COLLECTIONS for w, _ in c.wares}

COIN_DEVICES = {
    "portrait": "the head of a ruler",
    "creature": "an animal device",
    "emblem": "an emblem",
    "inscription": "an inscription",
}

KIND_NOUNS = {
    "vase": "vase",
    "jar": "jar",
    "bowl": "bowl",
    "cup": "cup",
    "dish": "dish",
    "amphora": "amphora",
    "ding": "ritual tripod cauldron (ding)",
    "gu": "ritual wine beaker (gu)",
    "hu": "wine vessel (hu)",
    "basin": "basin",
    "seated": "seated figure",
    "standing": "standing figure",
    "horse": "horse",
    "bird": "bird",
    "portrait": "",  # the ware already says "coin"
    "creature": "",
    "emblem": "",
    "inscription": "",
    "cuneiform": "",
    "relief": "relief panel",
    "stele": "inscribed stele",
}


@dataclass(frozen=True)
class ObjectSpec:
    """Identity and catalogue metadata of one generated object (everything but pixels)."""

    seed: int
    stream: int
    index: int
    object_id: str
    collection: str
    ware: str
    family: str
    kind: str
    title: str
    n_photos: int

    def rng(self, purpose: int) -> np.random.Generator:
        """Independent generator per purpose, so shape changes never shift the views drawn."""
        return np.random.default_rng([self.seed, self.stream, self.index, purpose])


def _pick(rng: np.random.Generator, items: list, weights: list[float]):
    w = np.asarray(weights, dtype=float)
    return items[int(rng.choice(len(items), p=w / w.sum()))]


def photo_count(rng: np.random.Generator) -> int:
    """Photos for one object, from the paper's distribution (10+ continues geometrically)."""
    n = int(_pick(rng, list(PHOTO_COUNTS), list(PHOTO_SHARES)))
    if n == 10:
        n += int(rng.geometric(0.45)) - 1
    return min(n, 16)


def object_spec(seed: int, index: int, stream: int = CATALOGUE_STREAM) -> ObjectSpec:
    """The spec of object `index` of `stream`; depends on (seed, stream, index) only."""
    rng = np.random.default_rng([seed, stream, index, 0])
    coll = _pick(rng, list(COLLECTIONS), [c.weight for c in COLLECTIONS])
    ware = _pick(rng, [w for w, _ in coll.wares], [p for _, p in coll.wares])
    family, kind = _pick(rng, [(f, k) for f, k, _ in ware.kinds], [p for _, _, p in ware.kinds])
    n_photos = photo_count(rng)
    year = int(rng.integers(1921, 2026))
    if stream == CATALOGUE_STREAM:
        object_id = f"{coll.prefix}.{year}.{index + 1:04d}"
    else:
        object_id = f"X{stream}-{coll.prefix}-{index + 1:05d}"
    decoration = str(rng.choice(ware.decorations))
    period = str(rng.choice(ware.periods))
    noun = KIND_NOUNS.get(kind, kind)
    if family == "coin":
        decoration = COIN_DEVICES[kind]
    title = (
        " ".join(p for p in (ware.title.capitalize(), noun, "with", decoration) if p)
        + f", {period}"
    )
    return ObjectSpec(
        seed, stream, index, object_id, coll.name, ware.name, family, kind, title, n_photos
    )


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


@dataclass
class Artefact:
    """A built model ready to render, plus how it is usually photographed."""

    spec: ObjectSpec
    mesh: Mesh
    can_flip: bool  # has a distinct back/underside worth photographing (coins, dishes, tablets)


Painter = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, ...]]


def bake(surface: Surface, painter: Painter, width: int, height: int) -> np.ndarray:
    """Paint a texture in parameter space: (H, W, 7) = linear RGB, gloss, metal, dh/du, dh/dv."""
    u = (np.arange(width, dtype=np.float64) + 0.5) / width
    v = (np.arange(height, dtype=np.float64) + 0.5) / height
    uu, vv = np.meshgrid(u, v)
    pos, region = surface.fn(uu, vv)
    albedo, gloss, metal, h = painter(pos, region, uu, vv)
    h = h.astype(np.float32)
    if surface.wrap_u:
        dhdu = (np.roll(h, -1, axis=1) - np.roll(h, 1, axis=1)) * (width / 2.0)
    else:
        dhdu = np.gradient(h, axis=1) * width
    dhdv = np.gradient(h, axis=0) * height
    tex = np.concatenate(
        [
            srgb_to_linear(np.clip(albedo, 0, 1)),
            np.clip(gloss, 0, 1)[..., None],
            np.clip(metal, 0, 1)[..., None],
            dhdu[..., None],
            dhdv[..., None],
        ],
        axis=-1,
    )
    return tex.astype(np.float32)


def chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Corner-cutting subdivision: a control polygon becomes a smooth potter's profile."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.empty((2 * len(q), 2))
        mid[0::2], mid[1::2] = q, r
        p = np.concatenate([p[:1], mid, p[-1:]])
    return p


def closed_profile(
    outer: np.ndarray, thickness: float, solid: bool = False
) -> tuple[np.ndarray, ...]:
    """Closed lathe profile from an outer wall (base to rim): base, wall, rounded lip, interior.

    The inner wall is offset along the wall normal, so shallow dishes keep an even thickness.
    Returns (r, y, region) arrays.
    """
    outer = np.asarray(outer, dtype=np.float64)
    r, y = outer[:, 0], outer[:, 1]
    pts: list[tuple[float, float, int]] = []
    if r[0] > 1e-6:
        pts += [(0.0, y[0], BASE), (r[0] * 0.5, y[0], BASE)]
    pts += [(float(a), float(b), OUTER) for a, b in zip(r, y, strict=True)]
    if solid:
        pts.append((0.0, float(y[-1]), LIP))
        arr = np.array(pts)
        return arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int16)
    tr = np.gradient(r)
    ty = np.gradient(y)
    n = np.stack([ty, -tr], 1) / np.maximum(np.hypot(tr, ty), 1e-9)[:, None]
    inner = outer - thickness * n
    centre = (outer[-1] + inner[-1]) / 2.0
    d = outer[-1] - centre
    ang0 = np.arctan2(d[1], d[0])
    for a in np.linspace(0, np.pi, 7)[1:-1]:
        pts.append(
            (
                centre[0] + np.cos(ang0 + a) * thickness / 2,
                centre[1] + np.sin(ang0 + a) * thickness / 2,
                LIP,
            )
        )
    floor = y[0] + max(thickness * 1.6, 0.02)
    keep = (inner[:, 1] >= floor) & (inner[:, 0] > 0.002)
    kept = inner[keep][::-1]
    pts += [(float(a), float(b), INNER) for a, b in kept]
    if len(kept):
        pts.append((float(kept[-1, 0]) * 0.5, floor, INNER))
    pts.append((0.0, floor, INNER))
    arr = np.array(pts)
    return arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int16)


def _u(rng: np.random.Generator, a: float, b: float) -> float:
    return float(rng.uniform(a, b))


def vessel_outline(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Control polygon (r, y) of the outer wall for a vessel kind, base to rim."""
    u = lambda a, b: _u(rng, a, b)  # noqa: E731
    if kind in ("vase", "amphora", "hu"):
        rf, yb, rb = u(0.13, 0.21), u(0.3, 0.55), u(0.27, 0.4)
        yn = u(0.7, 0.84)
        rn = u(0.07, 0.13) if kind == "vase" else u(0.11, 0.16)
        rl = rn * u(1.0, 1.8)
        pts = [
            (rf, 0),
            (rf, 0.03),
            (rf * 0.92, 0.06),
            ((rf + rb) / 2 + rb * u(-0.1, 0.12), yb * 0.55),
            (rb, yb),
            ((rb + rn) / 2 + rb * u(0.0, 0.15), (yb + yn) / 2),
            (rn, yn),
            (rn * u(0.95, 1.15), yn + (1 - yn) * 0.6),
            (rl, 1.0),
        ]
    elif kind == "jar":
        h = u(0.75, 0.95)
        rf, yb, rb = u(0.2, 0.27), u(0.45, 0.6) * h, u(0.38, 0.48)
        yn, rn = u(0.86, 0.92) * h, u(0.17, 0.26)
        pts = [
            (rf, 0),
            (rf, 0.03),
            (rf * 0.95, 0.05),
            ((rf + rb) / 2 + 0.05, yb * 0.5),
            (rb, yb),
            (rn * 1.4, yn - 0.07 * h),
            (rn, yn),
            (rn * u(1.0, 1.12), h),
        ]
    elif kind in ("bowl", "basin"):
        rim = u(0.45, 0.55)
        h = u(0.22, 0.33) if kind == "bowl" else u(0.14, 0.2)
        rf = rim * u(0.32, 0.45)
        p = u(0.35, 0.7)
        ys = np.linspace(0.05, h, 7)
        rs = rf + (rim - rf) * ((ys - 0.05) / (h - 0.05)) ** p
        pts = [(rf, 0), (rf, 0.03), (rf * 0.93, 0.05)] + list(zip(rs[1:], ys[1:], strict=True))
        if kind == "basin":
            pts.append((rim * 1.08, h + 0.005))
    elif kind == "cup":
        h = u(0.45, 0.65)
        rf, rim = u(0.15, 0.2), u(0.21, 0.29)
        pts = [
            (rf, 0),
            (rf, 0.025),
            (rf * 0.88, 0.05),
            ((rf * 0.9 + rim) / 2 + u(-0.02, 0.04), h * 0.5),
            (rim, h),
        ]
    elif kind == "gu":
        pts = [
            (u(0.2, 0.25), 0),
            (u(0.19, 0.23), 0.05),
            (u(0.11, 0.14), 0.22),
            (u(0.13, 0.16), 0.38),
            (u(0.09, 0.11), 0.5),
            (u(0.15, 0.19), 0.72),
            (u(0.26, 0.31), 1.0),
        ]
    elif kind == "ding":
        rim, depth, lift = u(0.42, 0.5), u(0.3, 0.42), u(0.22, 0.32)
        phi = np.linspace(0.12, np.pi / 2, 7)
        pts = [(rim * np.sin(a), lift + depth * (1 - np.cos(a))) for a in phi]
        pts.append((rim * 1.02, lift + depth + 0.08))
        pts.insert(0, (0.02, lift))
    elif kind == "dish":
        rim = u(0.5, 0.6)
        h = u(0.06, 0.1)
        rf = rim * u(0.45, 0.6)
        rw = rim * u(0.55, 0.72)
        pts = [
            (rf, 0),
            (rf * 1.03, 0.015),
            (rf * 1.06, 0.018),
            (rw, 0.025),
            (rim * 0.88, h * 0.75),
            (rim * 0.95, h * 0.95),
            (rim, h),
        ]
    else:
        raise ValueError(f"unknown vessel kind {kind}")
    return chaikin(np.array(pts, dtype=np.float64), 3)


def _flan(rng: np.random.Generator, amount: float) -> Callable[[np.ndarray], np.ndarray]:
    """Radius wobble round the circumference (hand-thrown pots, hammered coins)."""
    k = np.arange(2, 6)
    a = rng.normal(0, amount, len(k)) / k
    ph = rng.uniform(0, TAU, len(k))

    def flan(theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta)[..., None]
        return 1.0 + np.sum(a * np.cos(k * theta + ph), axis=-1)

    return flan


@lru_cache(maxsize=64)
def _style_script(seed: int, ware: str) -> tuple[np.ndarray, ...]:
    """The invented alphabet shared by a ware (legends on one mint's coins look alike)."""
    rng = np.random.default_rng([seed, 99, zlib.crc32(ware.encode())])
    return tuple(make_script(rng))


class Finish:
    """Per-object colours and wear for one ware; turns motif coverage into texture channels."""

    def __init__(self, ware: Ware, rng: np.random.Generator) -> None:
        self.ware = ware
        self.noise = Noise3(rng)
        self.body = jitter_colour(rng, ware.body, 0.05)
        self.colours = [jitter_colour(rng, c, 0.06) for c in ware.colours]
        self.biscuit = jitter_colour(rng, (0.8, 0.72, 0.6), 0.06)
        self.wear = float(rng.beta(1.5, 3.0))
        self.gloss = ware.gloss * _u(rng, 0.85, 1.05)
        self.relief = _u(rng, 0.006, 0.012)

    def ceramic(
        self,
        pos: np.ndarray,
        cov: np.ndarray,
        colour_idx: np.ndarray,
        unglazed: np.ndarray,
        rim: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """Glazed or slipped pottery: painted or incised pattern, glaze loss, chips, grime."""
        w = self.ware
        n = self.noise
        albedo = np.broadcast_to(self.body, pos.shape).copy()
        height = np.zeros(pos.shape[:2], np.float32)
        if w.finish == "painted":
            wash = 0.75 + 0.25 * n.fbm(pos, 9.0, 2)
            fade = 1.0 - 0.5 * self.wear * smoothstep(0.5, 0.8, n.fbm(pos + 4.0, 5.0, 3))
            a = (cov * wash * fade)[..., None]
            col = np.stack(self.colours)[colour_idx]
            albedo = albedo * (1 - a) + col * a
            height += cov * 0.0015
        else:  # incised under a glaze: the glaze pools darker in the cuts
            height -= blur(cov, 0.7) * self.relief * 0.6
            albedo = albedo * (1 - 0.25 * cov[..., None]) + self.colours[0] * 0.25 * cov[..., None]
            if w.name == "celadon":
                albedo *= (1.0 - 0.18 * crackle(n, pos, 16.0))[..., None]
        gloss = np.full(pos.shape[:2], self.gloss, np.float32)
        albedo *= (0.96 + 0.08 * n.fbm(pos + 9.0, 14.0, 2))[..., None]
        loss = smoothstep(0.76, 0.79, n.fbm(pos + 17.0, 7.0, 3) + 0.06 * self.wear + 0.06 * rim)
        loss = np.maximum(loss * (self.wear > 0.3), unglazed)
        albedo = albedo * (1 - loss[..., None]) + self.biscuit * loss[..., None]
        gloss = gloss * (1 - loss) + 0.08 * loss
        height -= loss * 0.002
        albedo *= stains(n, pos, self.wear)[..., None]
        return albedo, gloss, np.zeros_like(gloss), height

    def bronze(self, pos: np.ndarray, relief: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cast relief (positive height) under an uneven patina."""
        height = blur(relief, 0.8) * self.relief * 1.8
        albedo, gloss, metal = bronze_finish(
            self.noise, pos, height, self.body, self.colours, 0.7 + 0.6 * self.wear
        )
        return albedo, gloss, metal, height


def _lathe_painter(
    finish: Finish, rng: np.random.Generator, outer: np.ndarray, kind: str, family: str
) -> Painter:
    """Bands up the outer wall; for open forms bands and a medallion inside; a mark underneath."""
    r_rim = float(outer[-1, 0])
    y0, y1 = float(outer[0, 1]), float(outer[-1, 1])
    wall_h = y1 - y0
    n_col = len(finish.colours)
    open_form = kind in ("bowl", "dish", "basin")
    outer_bands = random_bands(
        rng,
        n_col,
        finish.ware.main_motifs,
        finish.ware.border_motifs,
        wall_h,
        density=0.45 if family == "plate" else 1.0,
    )
    if family == "plate":
        outer_bands = [b for b in outer_bands if b.motif in ("lines", "petals", "scroll")][:2]
    inner_bands: list[Band] = []
    medallion = None
    if open_form:
        inner_bands = random_bands(
            rng,
            n_col,
            finish.ware.main_motifs,
            finish.ware.border_motifs,
            r_rim,
            density=0.55 if family == "plate" else 0.4,
        )
        for b in inner_bands:  # inside decoration lives between the medallion and the rim
            b.t0, b.t1 = 0.42 + 0.56 * b.t0, 0.42 + 0.56 * b.t1
        kind_m = str(rng.choice(["glyph", "silhouette", "rosette"]))
        medallion = (
            kind_m,
            make_glyph(rng, 7, 56) if kind_m == "glyph" else make_silhouette(rng),
            int(rng.integers(5, 13)),
            int(rng.integers(0, n_col)),
            _u(rng, 0.28, 0.38),
        )
    mark = (
        make_glyph(rng, 5, 40, symmetric=False)
        if finish.ware.finish != "bronze" and rng.random() < 0.6
        else None
    )
    bronze = finish.ware.finish == "bronze"
    throw = _u(rng, 150.0, 260.0)

    def paint(
        pos: np.ndarray, region: np.ndarray, uu: np.ndarray, vv: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
        theta = np.mod(np.arctan2(z, x), TAU)
        rad = np.hypot(x, z)
        cov = np.zeros(region.shape, np.float32)
        cidx = np.zeros(region.shape, np.int64)
        t_out = (y - y0) / max(wall_h, 1e-6)
        is_out = region == OUTER
        for b in outer_bands:
            bandh = max((b.t1 - b.t0) * wall_h, 1e-4)
            c = b.coverage(theta, t_out, TAU * rad / b.repeats / bandh) * is_out
            cidx = np.where(c > cov, b.colour, cidx)
            cov = np.maximum(cov, c)
        if open_form:
            is_in = region == INNER
            t_in = rad / r_rim
            for b in inner_bands:
                bandh = max((b.t1 - b.t0) * r_rim, 1e-4)
                c = b.coverage(theta, t_in, TAU * rad / b.repeats / bandh) * is_in
                cidx = np.where(c > cov, b.colour, cidx)
                cov = np.maximum(cov, c)
            kind_m, motif, petals, col, size = medallion
            mx, mz = x / (r_rim * size), z / (r_rim * size)
            mr = np.hypot(mx, mz)
            if kind_m == "glyph":
                c = place_glyph(motif, mx * 0.5 + 0.5, mz * 0.5 + 0.5)
            elif kind_m == "silhouette":
                c = motif.coverage(mx * 0.6, mz * 0.6 + 0.5)
            else:
                ang = np.arctan2(mz, mx)
                edge = 0.45 + 0.4 * np.abs(np.cos(ang * petals / 2.0))
                c = line(np.abs(mr - edge), 0.05) + line(mr, 0.15) + line(np.abs(mr - 0.95), 0.03)
            c = np.clip(c, 0, 1) * is_in * (mr < 1.0)
            cidx = np.where(c > cov, col, cidx)
            cov = np.maximum(cov, c)
        if mark is not None:
            mc = place_glyph(mark, x / (r_rim * 0.25) + 0.5, z / (r_rim * 0.25) + 0.5) * (
                region == BASE
            )
            cov = np.maximum(cov, mc)
        base = region == BASE
        foot = is_out & (t_out < 0.04)
        rim = ((region == LIP) | (is_out & (t_out > 0.97))).astype(np.float32)
        if bronze:
            albedo, gloss, metal, height = finish.bronze(pos, cov)
        else:
            unglazed = (foot | base & (finish.ware.gloss > 0.5)).astype(np.float32) * 0.9
            albedo, gloss, metal, height = finish.ceramic(pos, cov, cidx, unglazed, rim)
            height = height + 0.0004 * np.sin(y * throw) * (region == INNER)
        return albedo, gloss, metal, height

    return paint


def _lathe_ao(outer: np.ndarray) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Interiors darken with depth below the rim; the wall darkens where it meets the ground."""
    y_top = float(outer[-1, 1])
    r_rim = float(outer[-1, 0])

    def ao(p: np.ndarray, n: np.ndarray, region: np.ndarray) -> np.ndarray:
        depth = (y_top - p[..., 1]) / max(r_rim * 1.6, 1e-6)
        inner = np.where(region == INNER, 1.0 - 0.55 * np.clip(depth, 0, 1) ** 0.8, 1.0)
        ground = 1.0 - 0.35 * (1.0 - smoothstep(0.0, 0.06, p[..., 1])) * (region != BASE)
        return inner * ground

    return ao


def build_vessel(spec: ObjectSpec) -> Artefact:
    """Pots, bronze ritual vessels and dishes: one lathe body plus handles, ears or legs."""
    ware = WARES[spec.ware]
    rng = spec.rng(1)
    outer = vessel_outline(spec.kind, rng)
    thickness = _u(rng, 0.012, 0.022)
    r, y, region = closed_profile(outer, thickness)
    wobble = 0.0 if ware.finish == "bronze" else _u(rng, 0.0, 0.02)
    body = Surface(lathe(r, y, region, _flan(rng, wobble)), nu=144, nv=140, ao=_lathe_ao(outer))
    prng = spec.rng(2)
    finish = Finish(ware, prng)
    painter = _lathe_painter(finish, prng, outer, spec.kind, spec.family)
    parts = [Part(body, bake(body, painter, 448, 384), ware.material)]

    def plain(
        pos: np.ndarray, region: np.ndarray, uu: np.ndarray, vv: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        zero = np.zeros(pos.shape[:2], np.float32)
        if ware.finish == "bronze":
            return finish.bronze(pos, zero)
        return finish.ceramic(pos, zero, zero.astype(np.int64), zero, zero)

    extra: list[Surface] = []
    ys, rs = outer[:, 1], outer[:, 0]
    top = float(ys[-1])
    if spec.kind in ("amphora", "cup") or (spec.kind == "jar" and rng.random() < 0.3):
        handles = 2 if spec.kind != "cup" else 1
        y_hi = top * (0.88 if spec.kind != "cup" else 0.8)
        y_lo = top * (0.55 if spec.kind != "cup" else 0.25)
        r_hi = float(np.interp(y_hi, ys, rs))
        r_lo = float(np.interp(y_lo, ys, rs))
        reach = max(r_lo - r_hi, 0.0) + _u(rng, 0.06, 0.12)
        for k in range(handles):
            th = k * np.pi
            e1 = np.array([np.cos(th), 0.0, np.sin(th)])
            c = e1 * (r_hi - 0.01) + np.array([0.0, (y_hi + y_lo) / 2, 0.0])
            fn = tube_arc(
                c,
                e1,
                np.array([0.0, 1.0, 0.0]),
                (reach, (y_hi - y_lo) / 2),
                _u(rng, 0.014, 0.022),
                (-np.pi / 2, np.pi / 2),
                squash=0.6,
            )
            extra.append(Surface(fn, nu=16, nv=40))
    if spec.kind == "ding":
        lift = float(ys[0])
        rim = float(rs[-1])
        for k in range(3):
            th = k * TAU / 3 + 0.3
            c = (rim * 0.55 * np.cos(th), (lift + 0.06) / 2, rim * 0.55 * np.sin(th))
            fn = superquadric((0.045, (lift + 0.06) / 2, 0.045), 0.3, 1.0, centre=c)
            extra.append(Surface(fn, nu=24, nv=24))
        for k in range(2):
            th = k * np.pi
            e1 = np.array([-np.sin(th), 0.0, np.cos(th)])
            c = np.array([np.cos(th), 0.0, np.sin(th)]) * rim * 0.95 + np.array(
                [0.0, top - 0.01, 0.0]
            )
            fn = tube_arc(
                c, e1, np.array([0.0, 1.0, 0.0]), (0.09, 0.11), 0.022, (0.0, np.pi), squash=0.45
            )
            extra.append(Surface(fn, nu=16, nv=32))
    if spec.kind == "hu":
        yh = top * 0.72
        rh = float(np.interp(yh, ys, rs))
        for k in range(2):
            th = k * np.pi
            e1 = np.array([np.cos(th), 0.0, np.sin(th)])
            c = e1 * (rh + 0.05) + np.array([0.0, yh - 0.05, 0.0])
            fn = tube_arc(c, e1, np.array([0.0, 1.0, 0.0]), 0.055, 0.013, (0.0, TAU))
            extra.append(Surface(fn, nu=12, nv=36))
    for s in extra:
        parts.append(Part(s, bake(s, plain, 64, 64), ware.material))
    return Artefact(spec, build_mesh(parts), can_flip=spec.family == "plate")


# ---------------------------------------------------------------------------------------------
# Figurines and statuettes
# ---------------------------------------------------------------------------------------------


@dataclass
class _Blob:
    radii: tuple[float, float, float]
    centre: tuple[float, float, float]
    matrix: np.ndarray
    role: str
    e: tuple[float, float] = (1.0, 1.0)
    deform: Callable[[np.ndarray], np.ndarray] | None = None


def _rot(ax: float = 0.0, ay: float = 0.0, az: float = 0.0) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return ry @ rz @ rx


def _figure_blobs(kind: str, rng: np.random.Generator) -> list[_Blob]:
    """Stylised figures from ellipsoids in a random, deliberately asymmetric pose."""
    u = lambda a, b: _u(rng, a, b)  # noqa: E731
    eye = np.eye(3)
    blobs: list[_Blob] = []
    if kind == "standing":
        flare = u(0.3, 0.9)
        rh = u(0.24, 0.3)

        def taper(p: np.ndarray) -> np.ndarray:
            k = 1.0 + flare * np.clip(-p[..., 1:2] / rh, 0, 1)
            return np.concatenate([p[..., :1] * k, p[..., 1:2], p[..., 2:] * k], axis=-1)

        if rng.random() < 0.7:
            blobs.append(
                _Blob((u(0.18, 0.24), 0.03, u(0.14, 0.18)), (0, 0.03, 0), eye, "base", (0.2, 0.3))
            )
        base = 0.06 if blobs else 0.0
        blobs.append(
            _Blob(
                (u(0.1, 0.13), rh, u(0.08, 0.1)), (0, base + rh, 0), eye, "robe", (1.0, 1.0), taper
            )
        )
        ty = base + 2 * rh + 0.1
        lean = u(-0.12, 0.12)
        blobs.append(
            _Blob(
                (u(0.1, 0.12), u(0.14, 0.17), u(0.07, 0.085)),
                (lean * 0.3, ty, 0),
                _rot(0, 0, lean),
                "torso",
            )
        )
        hy = ty + 0.22
        hr = u(0.065, 0.08)
        blobs.append(
            _Blob(
                (hr, hr * 1.1, hr),
                (lean * 0.8, hy, u(-0.01, 0.02)),
                _rot(u(-0.2, 0.2), u(-0.4, 0.4), 0),
                "head",
            )
        )
        if rng.random() < 0.6:
            blobs.append(
                _Blob(
                    (hr * u(0.7, 1.1), hr * u(0.4, 0.9), hr * u(0.7, 1.0)),
                    (lean * 0.9, hy + hr * 1.05, -0.01),
                    eye,
                    "hair",
                    (u(0.6, 1.5), 1.0),
                )
            )
        for side in (-1, 1):
            sx, sy = side * 0.12 + lean * 0.3, ty + 0.1
            ang = side * u(0.05, 1.0)
            fwd = u(-0.9, 0.5)
            m = _rot(fwd, 0, ang)
            length = u(0.13, 0.17)
            c = np.array([sx, sy, 0]) + m @ np.array([0, -length, 0])
            blobs.append(_Blob((0.035, length, 0.035), tuple(c), m, "arm"))
        if rng.random() < 0.35:  # something held: a vessel, a fan, a bird
            blobs.append(_Blob((0.045, 0.05, 0.045), (0.1, ty - 0.05, 0.1), eye, "held"))
    elif kind == "seated":
        blobs.append(
            _Blob(
                (u(0.24, 0.3), u(0.05, 0.07), u(0.18, 0.22)),
                (0, 0.06, 0),
                eye,
                "base",
                (0.3, u(0.3, 1.0)),
            )
        )
        blobs.append(
            _Blob((u(0.22, 0.26), u(0.07, 0.09), u(0.14, 0.17)), (0, 0.17, 0.02), eye, "robe")
        )
        lean = u(-0.1, 0.1)
        blobs.append(
            _Blob(
                (u(0.12, 0.14), u(0.17, 0.2), u(0.09, 0.1)),
                (0, 0.39, -0.01),
                _rot(u(-0.1, 0.1), 0, lean),
                "torso",
            )
        )
        hr = u(0.07, 0.085)
        blobs.append(
            _Blob(
                (hr, hr * 1.1, hr),
                (lean * 0.6, 0.64, 0.0),
                _rot(u(-0.2, 0.2), u(-0.5, 0.5), 0),
                "head",
            )
        )
        if rng.random() < 0.6:
            blobs.append(
                _Blob((hr * 0.5, hr * 0.6, hr * 0.5), (lean * 0.6, 0.64 + hr * 1.2, 0), eye, "hair")
            )
        if rng.random() < 0.35:
            blobs.append(_Blob((0.17, 0.17, 0.012), (0, 0.62, -0.11), eye, "halo"))
        for side in (-1, 1):
            m = _rot(u(-0.6, 0.2), 0, side * u(0.1, 0.5))
            blobs.append(
                _Blob(
                    (0.04, 0.12, 0.04),
                    tuple(np.array([side * 0.13, 0.42, 0]) + m @ np.array([0, -0.1, 0])),
                    m,
                    "arm",
                )
            )
            m2 = _rot(np.pi / 2 + u(-0.4, 0.2), 0, side * u(-0.3, 0.3))
            blobs.append(_Blob((0.035, 0.09, 0.035), (side * u(0.05, 0.12), 0.28, 0.09), m2, "arm"))
    elif kind == "horse":
        leg = u(0.28, 0.36)
        bl, bh = u(0.26, 0.32), u(0.1, 0.13)
        by = leg + bh * 0.6
        has_base = rng.random() < 0.5
        lift = 0.04 if has_base else 0.0
        if has_base:
            blobs.append(_Blob((bl + 0.06, 0.02, 0.12), (0, 0.02, 0), eye, "base", (0.2, 0.2)))
        blobs.append(
            _Blob((bl, bh, u(0.09, 0.11)), (0, by + lift, 0), _rot(0, 0, u(-0.05, 0.05)), "body")
        )
        neck_ang = u(0.45, 0.8)
        blobs.append(
            _Blob(
                (0.065, 0.17, 0.06), (bl * 0.85, by + lift + 0.14, 0), _rot(0, 0, -neck_ang), "neck"
            )
        )
        head_turn = u(-0.35, 0.35)
        blobs.append(
            _Blob(
                (0.12, 0.05, 0.05),
                (bl * 0.85 + 0.13, by + lift + 0.27, 0.0),
                _rot(0, head_turn, -u(0.8, 1.2)),
                "head",
            )
        )
        for lx in (-1, 1):
            for lz in (-1, 1):
                swing = u(-0.3, 0.3)
                m = _rot(0, 0, swing)
                c = np.array([lx * bl * 0.7, lift + leg / 2 + 0.02, lz * 0.06])
                blobs.append(_Blob((0.035, leg / 2 + 0.02, 0.035), tuple(c), m, "leg"))
        blobs.append(
            _Blob(
                (0.03, 0.15, 0.03),
                (-bl * 1.0, by + lift - 0.05, 0),
                _rot(0, 0, u(-0.7, -0.2)),
                "tail",
            )
        )
        if rng.random() < 0.6:
            blobs.append(
                _Blob((bl * 0.45, 0.03, 0.115), (0, by + lift + bh * 0.85, 0), eye, "saddle")
            )
    else:  # bird
        blobs.append(
            _Blob((u(0.13, 0.17), 0.03, u(0.11, 0.14)), (0, 0.03, 0), eye, "base", (0.3, 1.0))
        )
        tilt = u(-0.5, 0.1)
        blobs.append(
            _Blob(
                (u(0.17, 0.21), u(0.11, 0.13), u(0.1, 0.12)), (0, 0.3, 0), _rot(0, 0, tilt), "body"
            )
        )
        turn = u(-0.6, 0.6)
        hx = 0.17 * np.cos(turn)
        blobs.append(_Blob((0.075, 0.07, 0.07), (hx, 0.45, 0.17 * np.sin(turn) * 0.5), eye, "head"))
        blobs.append(
            _Blob(
                (0.06, 0.016, 0.018),
                (
                    hx + 0.08 * np.cos(turn),
                    0.44,
                    0.08 * np.sin(turn) * 0.5 + 0.085 * np.sin(turn) * 0.5,
                ),
                _rot(0, -turn, -0.2),
                "beak",
            )
        )
        blobs.append(_Blob((0.15, 0.025, 0.07), (-0.22, 0.34, 0), _rot(0, 0, u(0.1, 0.6)), "tail"))
        for side in (-1, 1):
            blobs.append(_Blob((0.012, 0.1, 0.012), (0.02, 0.12, side * 0.04), eye, "leg"))
            blobs.append(
                _Blob(
                    (0.14, 0.08, 0.02),
                    (-0.02, 0.32, side * 0.1),
                    _rot(side * u(0.0, 0.4), 0, tilt),
                    "wing",
                )
            )
    return blobs


def _figure_ao(
    blobs: list[_Blob], me: int
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Crevice darkening where one ellipsoid meets another, and near the ground."""
    others = [
        (np.linalg.inv(b.matrix), np.array(b.centre), np.array(b.radii))
        for i, b in enumerate(blobs)
        if i != me
    ]

    def ao(p: np.ndarray, n: np.ndarray, region: np.ndarray) -> np.ndarray:
        occ = np.ones(p.shape[:-1])
        for minv, c, r in others:
            q = matvec(p - c, minv) / r
            f = np.linalg.norm(q, axis=-1)
            occ *= 1.0 - 0.45 * (1.0 - smoothstep(0.95, 1.6, f))
        occ *= 1.0 - 0.3 * (1.0 - smoothstep(0.0, 0.05, p[..., 1]))
        return occ

    return ao


def _figure_painter(finish: Finish, rng: np.random.Generator, role: str) -> Painter:
    ware = finish.ware
    n = finish.noise
    robe_col = int(rng.integers(0, len(finish.colours)))
    hem = _u(rng, 0.05, 0.25)
    folds = int(rng.integers(6, 16))
    stripe_f = _u(rng, 20.0, 45.0)

    def paint(
        pos: np.ndarray, region: np.ndarray, uu: np.ndarray, vv: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        shape = pos.shape[:2]
        zero = np.zeros(shape, np.float32)
        height = zero.copy()
        if role in ("robe", "torso"):
            height += 0.002 * np.sin(uu * TAU * folds + 2 * n.fbm(pos, 4.0, 2))
        if ware.finish == "bronze":
            return finish.bronze(pos, np.clip(height * 300, 0, 1))
        if ware.finish == "sancai":
            amber = smoothstep(0.48, 0.56, n.fbm(pos * np.array([3.0, 1.0, 3.0]), 2.5, 3))
            green = smoothstep(0.55, 0.62, n.fbm(pos * np.array([3.0, 1.2, 3.0]) + 7.0, 2.0, 3))
            albedo = np.broadcast_to(finish.colours[2], pos.shape).copy()
            albedo = albedo * (1 - amber[..., None]) + finish.colours[0] * amber[..., None]
            albedo = albedo * (1 - green[..., None]) + finish.colours[1] * green[..., None]
            gloss = np.full(shape, finish.gloss, np.float32)
            if role in ("head", "base", "hair"):
                unglazed = (
                    finish.biscuit if role != "head" else np.array([0.88, 0.8, 0.72], np.float32)
                )
                albedo[:] = unglazed
                gloss[:] = 0.1
                if role == "hair":
                    albedo[:] = (0.15, 0.12, 0.1)
            albedo *= stains(n, pos, finish.wear)[..., None]
            return albedo, gloss, zero, height
        if ware.finish == "terracotta":
            slip = 1.0 - smoothstep(0.6, 0.66, n.fbm(pos + 3.0, 7.0, 3) + 0.3 * finish.wear)
            albedo = finish.body * (1 - slip[..., None]) + finish.colours[0] * slip[..., None]
            if role in ("robe", "torso", "saddle", "body"):
                paint_on = slip * (1.0 - smoothstep(0.55, 0.62, n.fbm(pos + 8.0, 9.0, 2)))
                band = (
                    line(np.abs(np.mod(pos[..., 1] * stripe_f, 1.0) - 0.5), hem * 0.5, 0.05)
                    if role != "body"
                    else paint_on
                )
                a = (paint_on * np.maximum(band, 0.6 if role == "robe" else 0.0))[..., None]
                col = finish.colours[1 + robe_col % (len(finish.colours) - 1)]
                albedo = albedo * (1 - a) + col * a
            if role in ("hair", "tail"):
                albedo = albedo * 0.3 + finish.colours[-1] * 0.7
            albedo *= stains(n, pos, 0.5 + finish.wear)[..., None]
            return albedo, np.full(shape, finish.gloss, np.float32), zero, height
        if ware.finish == "jade":
            mottle = n.fbm(pos, 6.0, 4)
            albedo = finish.body * (0.8 + 0.4 * mottle[..., None])
            veins = line(np.abs(n.fbm(pos + 1.0, 3.0, 3) - 0.5), 0.03, 0.02)
            albedo = (
                albedo * (1 - 0.25 * veins[..., None]) + finish.colours[0] * 0.25 * veins[..., None]
            )
            skin = smoothstep(0.62, 0.7, n.fbm(pos + 5.0, 2.5, 3))
            albedo = albedo * (1 - skin[..., None]) + finish.colours[1] * skin[..., None]
            return albedo, np.full(shape, finish.gloss, np.float32), zero, height
        # wood: grain along the height, lacquer traces
        grain = 0.5 + 0.5 * np.sin(pos[..., 1] * 160.0 + 14.0 * n.fbm(pos, 3.0, 3))
        albedo = finish.body * (0.9 + 0.15 * grain[..., None])
        lac = smoothstep(0.55, 0.62, n.fbm(pos + 6.0, 4.0, 3)) * (role in ("robe", "torso"))
        albedo = albedo * (1 - lac[..., None]) + finish.colours[1] * lac[..., None]
        height += grain * 0.0008
        return albedo, np.full(shape, finish.gloss, np.float32), zero, height

    return paint


def build_figurine(spec: ObjectSpec) -> Artefact:
    """Statuettes and animal figurines: a union of posed ellipsoids on an optional plinth."""
    ware = WARES[spec.ware]
    blobs = _figure_blobs(spec.kind, spec.rng(1))
    prng = spec.rng(2)
    finish = Finish(ware, prng)
    parts = []
    for i, b in enumerate(blobs):
        size = max(b.radii)
        nu = int(np.clip(size * 320, 24, 96))
        if b.role == "base":  # flat-topped plinth: a slab lathe samples its faces evenly
            pr, py_, preg = slab_profile(2 * b.radii[1], 0.12)
            flan = superellipse_flan(b.radii[0], b.radii[2], 2.0 / max(b.e[1], 0.15))
            fn = transformed(
                lathe(pr, py_, preg, flan),
                np.eye(3),
                (b.centre[0], b.centre[1] - b.radii[1], b.centre[2]),
            )
            s = Surface(fn, nu=96, nv=len(pr) * 2, ao=_figure_ao(blobs, i))
        else:
            fn = superquadric(b.radii, b.e[0], b.e[1], b.matrix, b.centre, b.deform)
            s = Surface(fn, nu=nu, nv=max(16, nu // 2 + 4), ao=_figure_ao(blobs, i))
        tex_w = int(np.clip(size * 900, 32, 256))
        parts.append(
            Part(
                s,
                bake(s, _figure_painter(finish, prng, b.role), tex_w, tex_w // 2 + 8),
                ware.material,
            )
        )
    return Artefact(spec, build_mesh(parts), can_flip=False)


# ---------------------------------------------------------------------------------------------
# Coins and tablets (relief read through bump mapping)
# ---------------------------------------------------------------------------------------------


def _relief_sampler(hmap: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Look up a [-1, 1]^2 height map at (x, y) (y up)."""
    res = hmap.shape[0]

    def sample(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return sample_bilinear(hmap, (x + 1) / 2 * res, (1 - (y + 1) / 2) * res)

    return sample


def build_coin(spec: ObjectSpec) -> Artefact:
    """A struck coin lying flat: irregular flan, raised rim, obverse device and reverse."""
    ware = WARES[spec.ware]
    rng = spec.rng(1)
    radius = 0.5
    th = _u(rng, 0.035, 0.06)
    edge = th * 0.5
    prof = [(0.0, 0.0), (radius - edge, 0.0)]
    for a in np.linspace(-np.pi / 2, np.pi / 2, 9)[1:-1]:
        prof.append((radius - edge + edge * np.cos(a), th / 2 + th / 2 * np.sin(a)))
    prof += [(radius - edge, th), (0.0, th)]
    prof_arr = np.array(prof)
    region = np.array([BASE, BASE] + [OUTER] * 7 + [INNER, INNER], dtype=np.int16)
    hammered = ware.name != "gold" or rng.random() < 0.5
    surf = Surface(
        lathe(prof_arr[:, 0], prof_arr[:, 1], region, _flan(rng, 0.035 if hammered else 0.008)),
        nu=160,
        nv=72,
    )
    prng = spec.rng(2)
    finish = Finish(ware, prng)
    script = list(_style_script(spec.seed, spec.ware))
    rev_design = str(prng.choice(["creature", "emblem", "inscription"]))
    obverse = coin_face(prng, spec.kind, script)
    reverse = coin_face(prng, rev_design, script)
    cavity_o = np.clip(blur(obverse, 3.0) - obverse, 0, 1)
    cavity_r = np.clip(blur(reverse, 3.0) - reverse, 0, 1)
    samp = [_relief_sampler(m) for m in (obverse, reverse, cavity_o, cavity_r)]
    shift = prng.normal(0, 0.04, 2)  # off-centre strike
    depth = _u(rng, 0.008, 0.014)
    reeding = 0.05 if rng.random() < 0.3 else 0.0

    def paint(
        pos: np.ndarray, region: np.ndarray, uu: np.ndarray, vv: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        x, z = pos[..., 0] / radius + shift[0], pos[..., 2] / radius + shift[1]
        top = region == INNER
        bottom = region == BASE
        h = np.where(top, samp[0](x, -z), 0.0) + np.where(bottom, samp[1](-x, -z), 0.0)
        cav = np.where(top, samp[2](x, -z), 0.0) + np.where(bottom, samp[3](-x, -z), 0.0)
        h = h + (region == OUTER) * reeding * np.sin(uu * TAU * 90)
        height = (h * depth).astype(np.float32)
        if ware.finish == "bronze-coin":
            albedo, gloss, metal = bronze_finish(
                finish.noise, pos * 2.0, height, finish.body, finish.colours, 0.8 + finish.wear
            )
        else:
            tone = finish.noise.fbm(pos * 2.0, 5.0, 3)
            albedo = finish.body * (0.88 + 0.24 * tone[..., None])
            toning = smoothstep(0.55, 0.8, tone + 0.12 * finish.wear)[..., None] * 0.5
            albedo = albedo * (1 - toning) + finish.colours[0] * toning
            gloss = np.full(x.shape, 0.75, np.float32) - 0.3 * toning[..., 0]
            metal = np.ones(x.shape, np.float32)
        albedo = albedo * (1.0 - np.clip(cav * 4.0, 0, 0.6))[..., None]
        return albedo, gloss, metal, height

    part = Part(surf, bake(surf, paint, 640, 288), ware.material)
    return Artefact(spec, build_mesh([part]), can_flip=True)


def build_tablet(spec: ObjectSpec) -> Artefact:
    """A clay tablet, carved plaque or stele standing upright, inscribed or in relief."""
    ware = WARES[spec.ware]
    rng = spec.rng(1)
    if spec.kind == "cuneiform":
        w, h, d = _u(rng, 0.3, 0.45), _u(rng, 0.4, 0.6), _u(rng, 0.12, 0.18)
        corner, bevel, pillow = _u(rng, 3.0, 5.0), _u(rng, 0.12, 0.2), _u(rng, 0.12, 0.22)
    elif spec.kind == "stele":
        w, h, d = _u(rng, 0.3, 0.4), _u(rng, 0.75, 1.0), _u(rng, 0.1, 0.14)
        corner, bevel, pillow = _u(rng, 6.0, 10.0), _u(rng, 0.04, 0.08), 0.0
    else:
        w, h, d = _u(rng, 0.45, 0.6), _u(rng, 0.35, 0.5), _u(rng, 0.08, 0.12)
        corner, bevel, pillow = _u(rng, 6.0, 10.0), _u(rng, 0.04, 0.08), 0.0
    w, h = w / 2, h / 2
    pr, py_, preg = slab_profile(d, bevel, pillow)
    # Lathe axis (y) becomes the thickness (z); the rounded-rectangle outline stands upright.
    to_upright = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    fn = transformed(
        lathe(pr, py_, preg, superellipse_flan(w, h, corner)), to_upright, (0.0, h, -d / 2)
    )
    s = Surface(
        fn,
        nu=200,
        nv=len(pr) * 3,
        ao=lambda p, n, r: 1.0 - 0.3 * (1.0 - smoothstep(0.0, 0.05, p[..., 1])),
    )
    prng = spec.rng(2)
    finish = Finish(ware, prng)
    script = list(_style_script(spec.seed, spec.ware))
    aspect = w / h
    front = tablet_face(prng, spec.kind, script, aspect)
    back = tablet_face(prng, "cuneiform" if spec.kind == "cuneiform" else "stele", script, aspect)
    if spec.kind != "cuneiform" and prng.random() < 0.6:
        back = back * 0.0  # plain back, as most plaques and steles have
    cavity = [np.clip(blur(m, 2.0) - m, -1, 1) for m in (front, back)]
    samp = [_relief_sampler(m) for m in (front, back, *cavity)]
    depth = _u(rng, 0.005, 0.009)

    def paint(
        pos: np.ndarray, region: np.ndarray, uu: np.ndarray, vv: np.ndarray
    ) -> tuple[np.ndarray, ...]:
        x, y = pos[..., 0] / w, (pos[..., 1] - h) / h
        fr = region == INNER
        bk = region == BASE
        hh = np.where(fr, samp[0](x, y), 0.0) + np.where(bk, samp[1](-x, y), 0.0)
        cav = np.where(fr, samp[2](x, y), 0.0) + np.where(bk, samp[3](-x, y), 0.0)
        edge = (region == OUTER).astype(np.float32)
        n = finish.noise
        fire = n.fbm(pos, 4.0, 4)
        albedo = finish.body * (0.85 + 0.3 * fire[..., None])
        blot = smoothstep(0.55, 0.7, n.fbm(pos + 2.0, 3.0, 3))[..., None]
        albedo = albedo * (1 - blot) + finish.colours[1] * blot
        albedo *= (1.0 - np.clip(cav * 3.0, -0.15, 0.45))[..., None]
        if ware.finish == "stone":
            speck = smoothstep(0.7, 0.75, n.value(pos * 120.0))
            albedo = albedo * (1 - 0.2 * speck[..., None])
        chips = smoothstep(0.7, 0.74, n.fbm(pos + 9.0, 8.0, 3) + 0.12 * edge + 0.1 * finish.wear)
        albedo = albedo * (1 - chips[..., None] * 0.3) + 0.3 * chips[..., None] * np.array(
            [0.85, 0.8, 0.72]
        )
        height = (hh - chips * 0.6 + 0.15 * n.fbm(pos, 25.0, 2)) * depth
        gloss = np.full(x.shape, finish.gloss, np.float32)
        return albedo, gloss, np.zeros_like(gloss), height.astype(np.float32)

    part = Part(s, bake(s, paint, 512, 352), ware.material)
    return Artefact(spec, build_mesh([part]), can_flip=True)


BUILDERS: dict[str, Callable[[ObjectSpec], Artefact]] = {
    "vessel": build_vessel,
    "plate": build_vessel,
    "figurine": build_figurine,
    "coin": build_coin,
    "tablet": build_tablet,
}


def build_artefact(spec: ObjectSpec) -> Artefact:
    """Build the 3-D model of an object (deterministic from its spec)."""
    return BUILDERS[spec.family](spec)


# ---------------------------------------------------------------------------------------------
# Photography plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One photograph: camera direction, object pose, lights, backdrop and framing."""

    azimuth: float  # degrees round the object, 0 = front
    elevation: float  # degrees above the horizon
    flipped: bool  # object turned over (coin reverse, dish underside, tablet back)
    light_azimuth: float
    light_elevation: float
    key: float
    fill: float
    backdrop: str
    exposure: float
    warmth: float
    fill_frame: float  # fraction of the frame the object spans
    offset: tuple[float, float]


def _family_view(
    family: str, kind: str, rng: np.random.Generator, j: int, n: int, can_flip: bool
) -> tuple[float, float, bool]:
    base_az = j * 360.0 / n + rng.uniform(-20, 20) if j else rng.uniform(-8, 8)
    if family == "coin":
        if rng.random() < 0.15 and j > 1:
            return base_az, rng.uniform(40, 65), bool(j % 2)
        return rng.uniform(-15, 15) + (180 if j % 2 else 0), rng.uniform(84, 90), bool(j % 2)
    if family == "plate":
        flip = can_flip and j > 0 and rng.random() < 0.2
        return base_az, rng.uniform(35, 88) if rng.random() < 0.7 else rng.uniform(5, 20), flip
    if family == "tablet":
        flip = j > 0 and rng.random() < 0.3
        return (
            rng.uniform(-35, 35) + (0 if j == 0 else rng.choice([0, 0, 60, -60])),
            rng.uniform(0, 25),
            flip,
        )
    if kind in ("bowl", "basin") and j > 0 and rng.random() < 0.25:
        return base_az, rng.uniform(45, 70), False
    if family == "figurine":
        return base_az + 30 * (j == 0) * (rng.random() - 0.5), rng.uniform(0, 18), False
    return base_az, rng.uniform(4, 22), False


def plan_views(
    spec: ObjectSpec, count: int | None = None, rng: np.random.Generator | None = None
) -> list[View]:
    """The object's catalogue photographs: a front view first, then round the object.

    Most photographs of one object share a backdrop (one studio session), sometimes not --
    as in a real catalogue assembled over years.
    """
    rng = spec.rng(3) if rng is None else rng
    n = spec.n_photos if count is None else count
    coll = COLLECTIONS_BY_NAME[spec.collection]
    session = str(rng.choice(coll.backdrops))
    can_flip = spec.family in ("coin", "plate", "tablet")
    views = []
    for j in range(n):
        az, el, flip = _family_view(spec.family, spec.kind, rng, j, n, can_flip)
        backdrop = session if rng.random() < 0.7 else str(rng.choice(coll.backdrops))
        light_az, light_el = float(rng.uniform(-70, 70)), float(rng.uniform(30, 65))
        if spec.family == "coin":  # raking light brings up the relief of coins
            light_el = light_el * 0.5 + 5.0
        views.append(
            View(
                azimuth=float(az % 360.0),
                elevation=float(el),
                flipped=bool(flip),
                light_azimuth=light_az,
                light_elevation=light_el,
                key=float(rng.uniform(2.2, 3.0)),
                fill=float(rng.uniform(0.35, 0.7)),
                backdrop=backdrop,
                exposure=float(rng.uniform(0.85, 1.15)),
                warmth=float(rng.normal(0.0, 0.03)),
                fill_frame=float(rng.uniform(0.6, 0.78)),
                offset=(float(rng.normal(0, 0.02)), float(rng.normal(0, 0.02))),
            )
        )
    return views


def random_view(spec: ObjectSpec, rng: np.random.Generator) -> View:
    """A fresh viewpoint for a new (non-catalogue) photograph of the object, e.g. a dealer's."""
    v = plan_views(spec, count=max(2, int(rng.integers(2, 6))), rng=rng)
    return v[int(rng.integers(0, len(v)))]

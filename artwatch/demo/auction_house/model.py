"""What an auction house has for sale: lots, sales and photo keys, all drawn from a seed.

The model is pure data so tests can compare what the crawler stored with what the house
really offers. It includes what real sites do to crawlers: a lot relisted under a new URL
with the same photos, a lot whose photos and estimate change between crawls (the house's
`generation`), dead and non-image photo links, a very large photo, a lot page with broken
markup, a photo link pointing at a port of our own machine, and a lot behind robots.txt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

# Each style and the crawler spider that reads it (the spiders live in crawler/spiders/).
SPIDER_FOR_STYLE = {"html": "html_lots", "api": "api_lots", "js": "js_lots"}
STYLES = tuple(SPIDER_FOR_STYLE)

# Special photo keys served as something other than a good photo.
DEAD_PHOTO = "dead"  # 404
NOT_AN_IMAGE = "notimage"  # HTML served as image/jpeg
HUGE_PHOTO = "huge"  # more pixels than the image store accepts
UNSAFE_PHOTO_URL = "http://127.0.0.1:9/metadata.jpg"  # a port on our own machine
REDIRECT = "redirect-"  # "redirect-<key>": 302 to that photo
REDIRECT_UNSAFE = "redirect-unsafe"  # 302 to UNSAFE_PHOTO_URL

_NOUNS = ["vase", "jar", "bowl", "figure", "seal", "plate", "censer", "ewer", "cup", "mirror"]
_MATERIALS = ["bronze", "jade", "porcelain", "stoneware", "terracotta", "lacquer", "ivory"]
_ERAS = ["Han", "Tang", "Song", "Ming", "Qing", "Edo", "Joseon", "Gandhara", "Khmer"]
_SELLERS = ["Private collection, London", "Estate of a gentleman", "A European collection",
            "Property of a lady", "Old family collection, Paris"]
_CURRENCIES = ["GBP", "EUR", "USD"]


@dataclass
class Lot:
    """One lot as the house presents it (and, in `shows`, the ground truth behind it)."""

    lot_id: str
    number: int
    sale_id: str
    sale_date: date
    title: str
    description: str
    estimate_low: int
    estimate_high: int
    currency: str
    seller: str
    photos: list[str]  # photo keys or absolute URLs (special cases)
    shows: str | None = None  # catalogue accession shown in the photos, None for a distractor
    relist_of: str | None = None
    broken_markup: bool = False
    hidden: bool = False  # only linked from a robots.txt-disallowed path

    @property
    def slug(self) -> str:
        return "-".join(self.title.lower().split())[:60]


@dataclass
class HouseConfig:
    """How one house behaves; the defaults are what the tests crawl."""

    name: str
    style: str = "html"
    seed: int = 0
    lots: int = 30
    per_page: int = 10
    sales: int = 2
    catalogue_share: float = 0.3
    photos_per_lot: tuple[int, int] = (1, 3)
    rate_limit: float | None = None  # requests per second before 429; None = unlimited
    retry_after: int = 1
    first_hit_429: bool = True  # the second list page answers 429 once, always
    specials: bool = True  # dead/non-image/huge/broken/relist/changing/unsafe/hidden lots
    photo_size: tuple[int, int] = (320, 240)
    new_lots_per_generation: int = 0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, not {self.style!r}")
        if self.lots < 1 or self.per_page < 1 or self.sales < 1:
            raise ValueError("lots, per_page and sales must be positive")

    @property
    def spider(self) -> str:
        """The spider that crawls a house of this style."""
        return SPIDER_FOR_STYLE[self.style]


@dataclass
class HouseModel:
    """All lots of one house at its current generation."""

    config: HouseConfig
    accessions: list[str] = field(default_factory=list)
    generation: int = 0
    lots: list[Lot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rebuild()

    # Building ---------------------------------------------------------------------------

    def _lot(self, index: int, rng: random.Random, sale_id: str, sale_date: date) -> Lot:
        cfg = self.config
        title = f"{rng.choice(_ERAS)} {rng.choice(_MATERIALS)} {rng.choice(_NOUNS)}"
        low = rng.randrange(2, 200) * 100
        shows = None
        if self.accessions and rng.random() < cfg.catalogue_share:
            shows = rng.choice(self.accessions)
        n_photos = rng.randint(*cfg.photos_per_lot)
        prefix = cfg.name.upper()[:3]
        lot_id = f"{prefix}{index:05d}"
        return Lot(
            lot_id=lot_id,
            number=index + 1,
            sale_id=sale_id,
            sale_date=sale_date,
            title=title,
            description=(
                f"A {title.lower()}, {rng.randint(8, 60)} cm high. "
                f"Provenance: {rng.choice(_SELLERS).lower()}."
            ),
            estimate_low=low,
            estimate_high=low + low // 2 * rng.choice([1, 2]),
            currency=rng.choice(_CURRENCIES),
            seller=rng.choice(_SELLERS),
            photos=[f"{cfg.name}-{lot_id}-{i}" for i in range(n_photos)],
            shows=shows,
        )

    def rebuild(self) -> None:
        """(Re)draw every lot for the current generation; same seed, same lots."""
        cfg = self.config
        rng = random.Random(f"{cfg.seed}:{cfg.name}")
        total = cfg.lots + self.generation * cfg.new_lots_per_generation
        sale_ids = [f"S{cfg.seed % 100:02d}{s + 1:02d}" for s in range(cfg.sales)]
        first_date = date(2026, 12, 1)
        lots = []
        for index in range(total):
            # Lots keep their sale as new ones arrive (those join the latest sale).
            sale = min(index * cfg.sales // cfg.lots, cfg.sales - 1)
            lots.append(
                self._lot(index, rng, sale_ids[sale], first_date + timedelta(days=7 * sale))
            )
        if cfg.specials and len(lots) >= 8:
            self._add_specials(lots)
        self.lots = lots

    def _add_specials(self, lots: list[Lot]) -> None:
        cfg = self.config
        good = lots[0].photos[0]
        lots[0].photos = [good, DEAD_PHOTO + "-" + lots[0].lot_id, NOT_AN_IMAGE]
        changing = lots[2]
        changing.photos = [f"{cfg.name}-{changing.lot_id}-g{self.generation}-{i}" for i in range(2)]
        changing.estimate_low += 100 * self.generation
        lots[3].photos = [lots[3].photos[0], HUGE_PHOTO]
        lots[4].broken_markup = True
        lots[5].photos = [lots[5].photos[0], UNSAFE_PHOTO_URL]
        lots[6].photos = [lots[6].photos[0], REDIRECT + lots[6].photos[0], REDIRECT_UNSAFE]
        original = lots[1]
        last = lots[-1]
        relist = Lot(
            lot_id=original.lot_id + "R",
            number=last.number + 1,
            sale_id=last.sale_id,
            sale_date=last.sale_date,
            title=original.title,
            description=original.description,
            estimate_low=original.estimate_low,
            estimate_high=original.estimate_high,
            currency=original.currency,
            seller=original.seller,
            photos=list(original.photos),
            shows=original.shows,
            relist_of=original.lot_id,
        )
        hidden = Lot(
            lot_id=f"{cfg.name.upper()[:3]}PRIV",
            number=0,
            sale_id=last.sale_id,
            sale_date=last.sale_date,
            title="Staff preview lot",
            description="Not for crawlers.",
            estimate_low=1,
            estimate_high=2,
            currency="GBP",
            seller="-",
            photos=[f"{cfg.name}-hidden-0"],
            hidden=True,
        )
        lots.extend([relist, hidden])

    def advance(self) -> None:
        """Move to the next generation: photos of the changing lot change, new lots appear."""
        self.generation += 1
        self.rebuild()

    # Views --------------------------------------------------------------------------------

    @property
    def public_lots(self) -> list[Lot]:
        """Lots a polite crawler can reach, newest first (the order list pages use)."""
        return [lot for lot in reversed(self.lots) if not lot.hidden]

    @property
    def hidden_lots(self) -> list[Lot]:
        return [lot for lot in self.lots if lot.hidden]

    def lot(self, lot_id: str) -> Lot | None:
        for lot in self.lots:
            if lot.lot_id == lot_id:
                return lot
        return None

    def sales(self) -> list[str]:
        """Sale ids, newest first."""
        seen: list[str] = []
        for lot in reversed(self.lots):
            if lot.sale_id not in seen:
                seen.append(lot.sale_id)
        return seen

    def sale_lots(self, sale_id: str) -> list[Lot]:
        return [lot for lot in self.public_lots if lot.sale_id == sale_id]

    def photo_keys(self) -> set[str]:
        """Every good photo key a crawler should store (specials excluded)."""
        keys: set[str] = set()
        for lot in self.public_lots:
            keys.update(k for k in lot.photos if is_good_photo(k) and not k.startswith(REDIRECT))
        return keys


def is_good_photo(key: str) -> bool:
    """A photo key the house serves as a valid, storable photo."""
    return not (
        key.startswith(DEAD_PHOTO)
        or key in (NOT_AN_IMAGE, HUGE_PHOTO, REDIRECT_UNSAFE)
        or "://" in key
    )

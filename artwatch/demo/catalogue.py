"""Write a generated museum catalogue: JPEG photos plus `manifest.csv` in the import format.

The manifest is what `artwatch catalogue import` reads (object_id, image, collection, title,
url) plus generator columns (family, kind, ware, view, view_az, view_el, flipped, backdrop,
gen_seed, gen_stream, gen_index) that let the listing simulator re-photograph an object from
a new angle instead of reusing a catalogue photo. Objects are independent, so they are rendered
in worker processes; output is identical whatever the worker count or completion order.
"""

from __future__ import annotations

import csv
import ctypes
import multiprocessing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .artefacts import CATALOGUE_STREAM, ObjectSpec, View, build_artefact, object_spec, plan_views
from .render import render

IMPORT_FIELDS = ("object_id", "image", "collection", "title", "url")
EXTRA_FIELDS = (
    "family",
    "kind",
    "ware",
    "view",
    "view_az",
    "view_el",
    "flipped",
    "backdrop",
    "gen_seed",
    "gen_stream",
    "gen_index",
)
MANIFEST_FIELDS = IMPORT_FIELDS + EXTRA_FIELDS
URL_BASE = "https://collections.example.org/objects/"  # reserved example domain: never resolves
JPEG_QUALITY = 92


@dataclass(frozen=True)
class CatalogueRow:
    """One catalogue photograph as written to manifest.csv."""

    object_id: str
    image: str  # relative to the manifest's directory
    collection: str
    title: str
    url: str
    family: str
    kind: str
    ware: str
    view: int
    view_az: float
    view_el: float
    flipped: bool
    backdrop: str
    gen_seed: int
    gen_stream: int
    gen_index: int

    def as_csv(self) -> dict[str, str]:
        d = asdict(self)
        d["view_az"] = f"{self.view_az:.1f}"
        d["view_el"] = f"{self.view_el:.1f}"
        d["flipped"] = "1" if self.flipped else "0"
        return {k: str(v) for k, v in d.items()}


def object_url(object_id: str) -> str:
    return URL_BASE + object_id


def object_photos(
    spec: ObjectSpec, size: int = 256, supersample: int = 2, count: int | None = None
) -> list[tuple[View, object]]:
    """Render the catalogue photographs of one object: [(view, PIL image)]; the first `count`
    of its planned views (None: as many as the object's collection gives it)."""
    art = build_artefact(spec)
    return [(v, render(art, v, size, supersample)) for v in plan_views(spec, count=count)]


def _render_and_save(args: tuple[int, int, int, str, int, int, int, int | None]
                     ) -> list[CatalogueRow]:
    """Worker task: build, photograph and save one object; returns its manifest rows."""
    seed, stream, index, out_dir, size, quality, supersample, count = args
    spec = object_spec(seed, index, stream)
    images = Path(out_dir) / "images"
    rows = []
    for j, (view, img) in enumerate(object_photos(spec, size, supersample, count), start=1):
        name = f"{spec.object_id}_{j:02d}.jpg"
        img.save(images / name, "JPEG", quality=quality)
        rows.append(
            CatalogueRow(
                object_id=spec.object_id,
                image=f"images/{name}",
                collection=spec.collection,
                title=spec.title,
                url=object_url(spec.object_id),
                family=spec.family,
                kind=spec.kind,
                ware=spec.ware,
                view=j,
                view_az=round(view.azimuth, 1),
                view_el=round(view.elevation, 1),
                flipped=view.flipped,
                backdrop=view.backdrop,
                gen_seed=seed,
                gen_stream=stream,
                gen_index=index,
            )
        )
    return rows


def worker_init() -> None:
    """Per-worker setup: keep freed large numpy buffers in the heap for reuse (glibc only).

    Rendering allocates and frees many multi-megabyte temporaries; by default glibc maps and
    unmaps each one, and the resulting page faults cost a fifth of the CPU time. Only done in
    worker processes, never in the caller's.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1024 * 1024 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def pool_context() -> multiprocessing.context.BaseContext:
    """Start method for worker pools: "fork" where available, so workers need no re-import
    and callers need no __main__ guard; workers only run numpy/Pillow code, never the
    caller's threads (e.g. a progress bar)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _run(
    tasks: list[tuple], workers: int, progress: Callable[[int, int], None] | None
) -> list[list[CatalogueRow]]:
    results: list[list[CatalogueRow] | None] = [None] * len(tasks)
    if workers <= 1 or len(tasks) <= 1:
        for i, t in enumerate(tasks):
            results[i] = _render_and_save(t)
            if progress:
                progress(i + 1, len(tasks))
        return [r for r in results if r is not None]
    # Results come back in index order, so output never depends on scheduling.
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=pool_context(), initializer=worker_init
    ) as pool:
        for i, rows in enumerate(pool.map(_render_and_save, tasks, chunksize=1)):
            results[i] = rows
            if progress:
                progress(i + 1, len(tasks))
    return [r for r in results if r is not None]


def generate_catalogue(
    out_dir: str | Path,
    n_objects: int,
    seed: int = 0,
    size: int = 256,
    workers: int = 2,
    quality: int = JPEG_QUALITY,
    supersample: int = 2,
    progress: Callable[[int, int], None] | None = None,
    photos: Callable[[int], int | None] | None = None,
    indices: Sequence[int] | None = None,
) -> list[CatalogueRow]:
    """Generate objects 0..n_objects-1 of `seed` into `out_dir` (photos + manifest.csv).

    `progress(done, total)` is called as objects finish (for a progress bar). `photos(i)`:
    how many photos object i gets (None, or no function: as its collection plans; the
    paper's Table 2 distribution), e.g. a benchmark's "60 objects with 4, 3,500 with 1".
    `indices`: only these objects (e.g. those whose `object_spec` is a coin); `n_objects`
    is then ignored.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    tasks = [
        (seed, CATALOGUE_STREAM, i, str(out), size, quality, supersample,
         photos(i) if photos else None)
        for i in (range(n_objects) if indices is None else indices)
    ]
    rows = [r for group in _run(tasks, workers, progress) for r in group]
    write_manifest(out / "manifest.csv", rows)
    return rows


def write_manifest(path: str | Path, rows: Iterable[CatalogueRow]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r.as_csv())


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of any catalogue manifest (generated or real, e.g. coil100) as dicts."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.csv"
    with open(p, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))

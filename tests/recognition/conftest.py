"""One small bundle trained with the default recipe, shared by the recognition tests.

A generated catalogue of 12 objects; the last object is kept out of the training catalogue
(it is "added after training" in the retro-hunt test). Training uses the recipe's code with
fewer views, worlds and distractors than the defaults, so the whole session fixture costs
about a minute of CPU.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
from recognition_support import OBJECTS, SEED

from artwatch.demo import generate_catalogue

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def catalogue_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"full": all objects, "trained": all but the last, "added": only the last object}."""
    full = tmp_path_factory.mktemp("recognition-catalogue")
    rows = generate_catalogue(full, OBJECTS, seed=SEED, size=192, workers=1, supersample=1)
    added_id = rows[-1].object_id
    out = {"full": full}
    for name, keep in (("trained", lambda r: r["object_id"] != added_id),
                       ("added", lambda r: r["object_id"] == added_id)):
        target = tmp_path_factory.mktemp(f"recognition-{name}")
        (target / "images").mkdir()
        with (full / "manifest.csv").open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields, kept = reader.fieldnames, [r for r in reader if keep(r)]
        for r in kept:
            shutil.copy(full / r["image"], target / r["image"])
        with (target / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)
        out[name] = target
    return out


@pytest.fixture(scope="session")
def deploy_bundle(catalogue_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                  ) -> Path:
    """The default recipe on the training catalogue (small settings)."""
    from training.catalogue import load_manifest
    from training.deploy import DeployRequest, train_deploy

    out = tmp_path_factory.mktemp("deploy") / "bundle"
    request = DeployRequest(out=out, name="recognition-test", views=3, query_views=2, folds=3,
                            distractors=60, progress=False, plots=False)
    train_deploy(load_manifest(catalogue_dirs["trained"]), request, log=lambda m: None)
    return out


@pytest.fixture
def served(conn, settings, catalogue_dirs, deploy_bundle: Path):  # noqa: ANN001
    """Catalogue imported, the bundle registered, indexed and active; `recogniser()` loads
    the matcher's recogniser as a worker would."""
    from artwatch.catalogue.importer import import_catalogue
    from artwatch.images import ImageStore
    from matcher.bundle import Bundle
    from matcher.indexing import index_catalogue
    from matcher.recognise import MatchPolicy, Recogniser
    from training.registry import activate_bundle, register_bundle

    store = ImageStore.from_settings(settings)
    import_catalogue(conn, catalogue_dirs["trained"], store, workers=1)
    bundle_id = register_bundle(conn, deploy_bundle)
    done, problems = index_catalogue(conn, Bundle.load(deploy_bundle), bundle_id, store,
                                     local_cache=settings.local_features_dir)
    assert done > 0 and problems == []
    activate_bundle(conn, "recognition-test")
    source = conn.execute(
        "INSERT INTO sources (name, spider, start_urls) VALUES ('house', 'html', "
        "ARRAY['http://127.0.0.1/']) RETURNING id").fetchone()["id"]

    def recogniser() -> Recogniser:
        return Recogniser.load(conn, store, MatchPolicy(), cache_dir=settings.local_features_dir)

    return {"store": store, "source": source, "n": 0, "bundle_id": bundle_id,
            "settings": settings, "recogniser": recogniser}

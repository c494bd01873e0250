"""End to end on a small generated catalogue: train -> bundle -> registry -> evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from matcher.bundle import Bundle, BundleError, save_bundle
from matcher.model import ArtefactClassifier
from matcher.precision import served_forward
from training.catalogue import load_manifest
from training.cli import app
from training.evaluate import EnsembleError, evaluate_bundles
from training.splits import Split

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, train_catalogue: Path) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "lite0-test"
    result = runner.invoke(
        app,
        [
            "train",
            "--recipe",
            "paper",
            "--catalogue",
            str(train_catalogue),
            "--out",
            str(out),
            "--name",
            "lite0-test",
            "--resolution",
            "96",
            "--pretrained",
            "pypi",
            "--epochs",
            "5",
            "--batch-size",
            "16",
            "--lr",
            "1e-3",
            "--holdout-objects",
            "0.2",
            "--threads",
            "2",
            "--register",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_bundle_contents(trained: Path) -> None:
    info = json.loads((trained / "bundle.json").read_text())
    for key in (
        "architecture",
        "resolution",
        "mean",
        "std",
        "objects",
        "embedding_dim",
        "temperature",
        "thresholds",
        "metrics",
        "manifest_hash",
        "pretrained_source",
        "created_at",
    ):
        assert key in info
    assert info["pretrained_source"].startswith("pypi:")
    assert info["embedding_dim"] == 1280 and info["resolution"] == 96
    assert "precision_0.95" in info["thresholds"] and "alerts_per_1000_5" in info["thresholds"]
    report = trained / "report"
    for name in (
        "report.md",
        "metrics.json",
        "training_curves.png",
        "accuracy_by_photos.png",
        "reliability.png",
        "tsne.png",
        "saliency.png",
    ):
        assert (report / name).stat().st_size > 0, name
    assert not (trained / "checkpoint").exists()
    split = Split.load(trained / "splits.json")
    assert set(split.objects) == set(info["objects"])


def test_beats_chance_and_calibration_helps(trained: Path) -> None:
    metrics = json.loads((trained / "report" / "metrics.json").read_text())
    n_objects = len(json.loads((trained / "bundle.json").read_text())["objects"])
    chance = 1 / n_objects
    assert metrics["classifier"]["top1"] >= max(0.6, 4 * chance)
    assert metrics["knn"]["top1"] >= max(0.5, 3 * chance)
    cal = metrics["calibration"]
    assert cal["nll_after"] < cal["nll_before"]
    assert len(metrics["training"]["history"]) >= 1
    assert metrics["operating_points"][0]["cross_fitted"]["recall"] >= 0


def test_bundle_predictions_match_training_metrics(trained: Path, train_catalogue: Path) -> None:
    bundle = Bundle.load(trained)
    cat = load_manifest(train_catalogue)
    split = Split.load(trained / "splits.json")
    test = cat.subset(split.keys("test"))
    images = [p.load() for p in test]
    pred = bundle.predict(images, k=3)
    assert np.allclose(pred.probs.sum(1), 1.0, atol=1e-5)
    top1 = np.mean([t[0][0] == p.object_id for t, p in zip(pred.topk, test, strict=True)])
    metrics = json.loads((trained / "report" / "metrics.json").read_text())
    assert top1 == pytest.approx(metrics["classifier"]["top1"])
    emb = bundle.embed(images)
    assert emb.shape == (len(images), 1280)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_bundle_round_trip_identical(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ArtefactClassifier("test_efficientnet", 4).eval()
    info = {
        "architecture": "test_efficientnet",
        "resolution": 48,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "objects": ["a", "b", "c", "d"],
        "embedding_dim": model.embedding_dim,
        "temperature": 1.7,
        "thresholds": {},
    }
    save_bundle(tmp_path / "b", model, info)
    loaded = Bundle.load(tmp_path / "b")
    from PIL import Image

    images = [Image.new("RGB", (60, 30), (200, 10, 10)), Image.new("RGB", (20, 50), (0, 90, 9))]
    x = loaded.preprocess.batch(images)
    with torch.no_grad():  # in the number format the matcher serves on this CPU
        logits, _ = served_forward(model, x, torch.device("cpu"))
        expected = torch.softmax(logits / 1.7, dim=1).numpy()
    assert np.array_equal(loaded.predict(images).probs, expected)
    assert np.array_equal(loaded.embed(images), Bundle.load(tmp_path / "b").embed(images))
    weights = tmp_path / "b" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BundleError, match="weights"):
        Bundle.load(tmp_path / "b")
    (tmp_path / "b" / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError):
        Bundle.load(tmp_path / "b")


def test_an_untrained_bundle_can_carry_a_local_first_stage(tmp_path: Path) -> None:
    """The throughput benchmark's bundle does a trained bundle's per-photo work: its codebook
    loads as a trained one's does (`save_codebook` / `local_stage_info`, shared with training)."""
    from matcher.evidence import LOCAL_CANDIDATES
    from matcher.sample import write_untrained_bundle

    with_stage = Bundle.load(write_untrained_bundle(tmp_path / "a", name="a", objects=["A"],
                                                    vlad_words=16))
    assert with_stage.codebook is not None and with_stage.codebook.shape == (16, 128)
    assert np.allclose(np.linalg.norm(with_stage.codebook, axis=1), 1.0, atol=1e-5)
    assert with_stage.info["local_first_stage"]["words"] == 16
    assert with_stage.info["local_first_stage"]["candidates"] == LOCAL_CANDIDATES
    without = Bundle.load(write_untrained_bundle(tmp_path / "b", name="b", objects=["A"]))
    assert without.codebook is None and "local_first_stage" not in without.info


def test_a_bundle_says_how_many_objects_its_local_first_stage_nominates(tmp_path: Path) -> None:
    """The matcher nominates as many objects as the bundle's calibration saw: a bundle made
    before the count changed keeps its own; a count that is not a small whole number is a
    clear BundleError, not a matcher that verifies nothing or everything."""
    from matcher.evidence import LOCAL_CANDIDATES
    from matcher.sample import write_untrained_bundle

    path = write_untrained_bundle(tmp_path / "a", name="a", objects=["A"], vlad_words=16)
    assert Bundle.load(path).local_candidates == LOCAL_CANDIDATES
    info = json.loads((path / "bundle.json").read_text())
    for count, error in ((2, None), (0, "candidates 0"), (True, "candidates True"),
                         ("6", "candidates '6'"), (2.5, "candidates 2.5")):
        info["local_first_stage"]["candidates"] = count
        (path / "bundle.json").write_text(json.dumps(info))
        if error is None:
            assert Bundle.load(path).local_candidates == 2
        else:
            with pytest.raises(BundleError, match=error):
                Bundle.load(path)


def test_registry_activate_flips_one_row(trained: Path, conn, tmp_path: Path) -> None:
    from matcher.sample import write_untrained_bundle

    for name in ("first", "second"):
        write_untrained_bundle(tmp_path / name, name=name, objects=["A", "B"])
    for path in (tmp_path / "first", tmp_path / "second", trained):
        assert runner.invoke(app, ["models", "register", str(path)]).exit_code == 0
    assert runner.invoke(app, ["models", "activate", "first"]).exit_code == 0
    assert runner.invoke(app, ["models", "activate", "second"]).exit_code == 0
    rows = conn.execute(
        "SELECT name, active, activated_at, info FROM bundles ORDER BY id").fetchall()
    assert [(r["name"], r["active"]) for r in rows] == \
        [("first", False), ("second", True), ("lite0-test", False)]
    assert rows[1]["activated_at"] is not None
    assert rows[2]["info"]["objects"] == json.loads((trained / "bundle.json").read_text())[
        "objects"]
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "second" in listed.output
    missing = runner.invoke(app, ["models", "activate", "nope"])
    assert missing.exit_code == 1 and "no bundle named" in missing.output
    # A paper-recipe bundle reproduces the paper's tables; the matcher cannot serve it.
    paper = runner.invoke(app, ["models", "activate", "lite0-test"])
    assert paper.exit_code == 1 and "cannot be served" in paper.output
    assert conn.execute("SELECT count(*) AS n FROM bundles WHERE active").fetchone()["n"] == 1


def test_ensemble_averages_once_and_refuses_leaks(
    trained: Path, train_catalogue: Path, tmp_path: Path
) -> None:
    cat = load_manifest(train_catalogue)
    single = evaluate_bundles([trained], cat, log=lambda s: None)
    double = evaluate_bundles([trained, trained], cat, log=lambda s: None)
    assert double["ensemble"]["top1"] == pytest.approx(single["ensemble"]["top1"])
    assert double["ensemble"]["top5"] == pytest.approx(single["ensemble"]["top5"])
    leaky = tmp_path / "leaky"
    shutil.copytree(trained, leaky, ignore=shutil.ignore_patterns("*.png"))
    split = Split.load(leaky / "splits.json")
    split.assignment[split.keys("test")[0]] = "train"
    split.save(leaky / "splits.json")
    with pytest.raises(EnsembleError, match="test split"):
        evaluate_bundles([trained, leaky], cat, log=lambda s: None)
    out = runner.invoke(app, ["evaluate", str(trained), str(trained), "-c", str(train_catalogue)])
    assert out.exit_code == 0, out.output
    assert "ensemble" in out.output


def test_cli_bad_input_is_a_clear_error(
    tmp_path: Path, trained: Path, train_catalogue: Path
) -> None:
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "nowhere"), "--no-register"])
    assert result.exit_code == 1 and "manifest.csv" in result.output
    result = runner.invoke(app, ["train", "-c", str(train_catalogue), "--recipe", "nope"])
    assert result.exit_code == 1 and "--recipe must be one of deploy, paper" in result.output
    result = runner.invoke(app, ["train", "-c", str(train_catalogue), "--pooling", "max"])
    assert result.exit_code == 1 and "--pooling must be one of gem, avg" in result.output
    result = runner.invoke(app, ["train", "-c", str(train_catalogue), "--verified-model", "svm"])
    assert result.exit_code == 1
    assert "--verified-model must be auto, logistic or trees" in result.output
    result = runner.invoke(app, ["train", "-c", str(train_catalogue), "--local-candidates", "0"])
    assert result.exit_code == 2 and "--local-candidates" in result.output
    from training.deploy import DeployRequest, train_deploy

    with pytest.raises(ValueError, match="local_candidates 65: need 1 to 64"):
        train_deploy(load_manifest(train_catalogue),
                     DeployRequest(out=tmp_path / "nominees", name="n", local_candidates=65))
    result = runner.invoke(
        app,
        [
            "train",
            "-c",
            str(train_catalogue),
            "--out",
            str(trained),
            "--no-register",
            "--epochs",
            "1",
        ],
    )
    assert result.exit_code == 1 and "already holds a bundle" in result.output
    result = runner.invoke(
        app,
        [
            "train",
            "-c",
            str(train_catalogue),
            "--arch",
            "no_such_net",
            "--out",
            str(tmp_path / "x"),
            "--no-register",
        ],
    )
    assert result.exit_code == 1 and "no_such_net" in result.output

"""examples/python/ray_batch.py: the Ray Data batch job against the Detector called
directly. One local Ray instance (2 CPUs, no dashboard, a small object store) for the
module; ray[data] is in python/requirements-test.txt, so a missing Ray is a failure."""

import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest

from conftest import DEMO_IMAGE, DEMO_MODEL, REPO

EXAMPLE_DIR = REPO / "examples" / "python"
# Ray Data's own DataContext warns about its own deprecated fields.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


@pytest.fixture(scope="module")
def ray_batch():
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        pytest.fail(f"Ray Data is not installed ({e}); scripts/python-test.sh installs it from "
                    "python/requirements-test.txt")
    sys.path.insert(0, str(EXAMPLE_DIR))
    try:
        import ray_batch
    finally:
        sys.path.remove(str(EXAMPLE_DIR))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=96 * 2**20, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray_batch
    ray.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory, fixtures):
    """27 files: the 5 fixture images, demo.jpg 20 times, in two folders, a
    truncated JPEG and a file that is no image at all."""
    root = tmp_path_factory.mktemp("ray_images")
    (root / "more").mkdir()
    for p in sorted((fixtures / "images").iterdir()):
        shutil.copy(p, root / p.name)
    for i in range(20):
        shutil.copy(DEMO_IMAGE, root / ("more" if i % 2 else ".") / f"demo_{i:02d}.jpg")
    data = DEMO_IMAGE.read_bytes()
    (root / "more" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "not_an_image.png").write_bytes(b"this is text, not a PNG\n" * 10)
    return root


BAD = {"truncated.jpg", "not_an_image.png"}


def read_parquet(path):
    import pyarrow.parquet as pq

    return {row["path"]: row for row in pq.read_table(path).to_pylist()}


def read_jsonl(path):
    rows = {}
    for f in sorted(path.iterdir()):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            rows[row["path"]] = row
    return rows


def check_rows(rows, paths, detector):
    assert sorted(rows) == sorted(paths)
    for path, row in rows.items():
        if os.path.basename(path) in BAD:
            assert row["error"] and row["error"].startswith(("ParseError", "UnsupportedError")), row["error"]
            assert row["boxes"] == [] and row["scores"] == [] and row["class_ids"] == [] and row["class_names"] == []
            continue
        r = detector(path)
        assert row["error"] is None, row["error"]
        assert (row["height"], row["width"]) == r.orig_shape
        assert len(r) > 0
        # Exactly the detector's float32 values, in its order.
        np.testing.assert_array_equal(np.array(row["boxes"], np.float32).reshape(-1, 4), r.xyxy)
        np.testing.assert_array_equal(np.array(row["scores"], np.float32), r.confidence)
        np.testing.assert_array_equal(np.array(row["class_ids"], np.int64), r.class_id)
        assert row["class_names"] == list(r.class_name)


def test_parquet_two_actors_equal_detector(ray_batch, images, tmp_path):
    import damoyolo

    out = tmp_path / "detections"
    summary = ray_batch.run([str(images)], str(DEMO_MODEL), str(out), actors=2, threads=1, batch_size=4)
    paths = ray_batch.list_images([str(images)])
    assert len(paths) == 27
    assert summary["images"] == summary["rows"] == 27
    assert summary["failed"] == len(BAD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detections"], "staging directory left behind"
    assert all(f.suffix == ".parquet" for f in out.iterdir())
    check_rows(read_parquet(out), paths, damoyolo.Detector(DEMO_MODEL, threads=1))


def test_jsonl_one_actor_two_threads_model_shipped(ray_batch, images, tmp_path):
    import damoyolo

    out = tmp_path / "detections.jsonl.d"
    sources = [str(images / "more"), str(images / "*.png")]
    summary = ray_batch.run(sources, str(DEMO_MODEL), str(out), actors=1, threads=2, batch_size=16, fmt="jsonl",
                            ship_model=True)
    paths = ray_batch.list_images(sources)
    assert summary["rows"] == len(paths) == 10 + 1 + 4 + 1
    assert summary["failed"] == 2
    check_rows(read_jsonl(out), paths, damoyolo.Detector(DEMO_MODEL, threads=1))


def test_refuses_existing_output(ray_batch, images, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    empty = tmp_path / "empty"
    empty.mkdir()
    afile = tmp_path / "file.parquet"
    afile.write_text("mine")
    for out in (existing, empty, afile):
        with pytest.raises(FileExistsError, match="exists"):
            ray_batch.run([str(images)], str(DEMO_MODEL), str(out))
        # The write step refuses too (the job's last check before Ray writes).
        with pytest.raises(FileExistsError, match="exists"):
            ray_batch.write(None, str(out))
        with pytest.raises(SystemExit) as e:
            ray_batch.main([str(images), "-m", str(DEMO_MODEL), "-o", str(out)])
        assert e.value.code == 2
    assert (existing / "keep.txt").read_text() == "mine" and afile.read_text() == "mine"
    assert list(empty.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "existing", "file.parquet"]


def test_predictor_without_ray(ray_batch, images, tmp_path):
    """The callable class alone, as an actor runs it: a batch in, a table out;
    and from pack_model()'s bytes after the model file is gone."""
    import damoyolo

    copy = tmp_path / "model.onnx"
    shutil.copy(DEMO_MODEL, copy)
    shutil.copy(DEMO_MODEL.with_suffix(".labels.txt"), tmp_path / "model.labels.txt")
    packed = ray_batch.pack_model(str(copy))
    assert sorted(packed["files"]) == ["model.labels.txt", "model.onnx"]
    copy.unlink()
    shipped = ray_batch.DamoyoloPredictor(packed, threads=1)({"path": np.array([str(DEMO_IMAGE)], dtype=object)})
    row = shipped.to_pylist()[0]
    r = damoyolo.Detector(DEMO_MODEL)(DEMO_IMAGE)
    assert row["error"] is None and row["class_names"] == list(r.class_name)
    np.testing.assert_array_equal(np.array(row["scores"], np.float32), r.confidence)

    paths = [str(images / "demo_00.jpg"), str(images / "more" / "truncated.jpg"), str(images / "nowhere.jpg")]
    table = ray_batch.DamoyoloPredictor(str(DEMO_MODEL), threads=1)({"path": np.array(paths, dtype=object)})
    assert table.schema == ray_batch.SCHEMA
    rows = table.to_pylist()
    assert [r["path"] for r in rows] == paths
    r = damoyolo.Detector(DEMO_MODEL)(paths[0])
    np.testing.assert_array_equal(np.array(rows[0]["scores"], np.float32), r.confidence)
    assert rows[1]["error"].startswith("ParseError")
    assert rows[2]["error"].startswith("NotFoundError")

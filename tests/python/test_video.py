"""Video through the C++ Pipeline: every frame in order, the same detections as
the frame's pixels give through the image path, and early exit."""

import subprocess

import pytest

import damoyolo
from conftest import DEMO_MODEL
from helpers import assert_same_detections

FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory, ffmpeg):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=10",
                    "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def test_stream_yields_every_frame(clip):
    det = damoyolo.Detector(DEMO_MODEL)
    gen = det.predict(clip, stream=True)
    seen = []
    for r in gen:
        assert r.orig_shape == (240, 320) and r.channels == "bgr"
        assert r.orig_img.shape == (240, 320, 3)
        # The frame's pixels through the array path: the same detections.
        assert_same_detections(r, det(r.orig_img, bgr=True))
        seen.append(r.frame_index)
    assert seen == list(range(FRAMES))


def test_list_and_early_break(clip):
    det = damoyolo.Detector(DEMO_MODEL, conf=0.25)
    rs = det.predict(str(clip))
    assert len(rs) == FRAMES and rs[3].to_dict()["frame"] == 3
    gen = det.predict(str(clip), stream=True)
    first = next(gen)
    assert first.frame_index == 0
    gen.close()  # stops and joins the pipeline; a new stream still works afterwards
    assert len(det.predict(str(clip))) == FRAMES


def test_two_videos_run_as_two_streams(clip, tmp_path, ffmpeg):
    other = tmp_path / "other.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
                    "-frames:v", "5", "-pix_fmt", "yuv420p", str(other)], check=True)
    det = damoyolo.Detector(DEMO_MODEL, batch=2)
    rs = det.predict([str(clip), str(other)])
    by_stream = {0: [], 1: []}
    for r in rs:
        by_stream[r.stream].append(r.frame_index)
        assert r.orig_shape == ((240, 320) if r.stream == 0 else (120, 160))
    assert by_stream == {0: list(range(FRAMES)), 1: list(range(5))}
    assert {r.path for r in rs if r.stream == 1} == {str(other)}


def test_missing_video_raises(tmp_path):
    det = damoyolo.Detector(DEMO_MODEL)
    with pytest.raises(FileNotFoundError):
        det.predict(str(tmp_path / "missing.mp4"))


def test_corrupt_video_raises(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    det = damoyolo.Detector(DEMO_MODEL)
    with pytest.raises(damoyolo.Error):
        det.predict(str(bad))

"""pytest fixtures for the Python package's tests (scripts/python-test.sh runs them
against a `pip install .` in build/python/venv)."""

import os
import pathlib
import shutil

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(os.environ.get("DAMOYOLO_FIXTURES", REPO.parent / "shared" / "fixtures"))
DEMO_MODEL = REPO / "models" / "damoyolo_demo.onnx"
DEMO_IMAGE = REPO / "models" / "demo.jpg"


@pytest.fixture(scope="session")
def fixtures():
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES} (../shared/fixtures next to the repository)")
    return FIXTURES


@pytest.fixture(scope="session")
def cli():
    """The C++ CLI of the main build, the reference the bindings are compared with."""
    path = pathlib.Path(os.environ.get("DAMOYOLO_BIN", REPO / "build" / "bin" / "damoyolo"))
    if not path.is_file():
        pytest.fail(f"the damoyolo CLI is not built at {path} (scripts/build.sh builds it)")
    return path


@pytest.fixture(scope="session")
def ffmpeg():
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.fail("ffmpeg is needed to make the test video (scripts/install-deps.sh installs it)")
    return exe


@pytest.fixture(scope="session")
def demo_detector():
    import damoyolo

    return damoyolo.Detector(DEMO_MODEL)


@pytest.fixture(scope="session")
def demo_image():
    import damoyolo

    return damoyolo.decode_image(DEMO_IMAGE)

"""Detection over a large image set as a Ray Data batch job.

    python examples/python/ray_batch.py -m model.onnx photos/ -o results/ \
        [--actors N] [--threads T] [--batch-size B] [--format parquet|jsonl] [--address auto]

The driver lists the images (a directory, searched recursively, or a glob; several may be
given), makes a Ray dataset of their paths, and `map_batches` sends batches of paths to a
pool of actors. Each actor builds one `damoyolo.Detector` (the model is loaded once per
actor, not per batch) and returns one row per image:

    path, height, width, boxes ([[x1, y1, x2, y2], ...] in image pixels), scores,
    class_ids, class_names, error

An image that cannot be read or decoded gives a row with `error` set (and no detections)
instead of failing the job; the summary at the end counts them. The rows are written by
Ray (parquet by default: float32 exactly as the detector returned them; or JSON lines)
into OUTPUT, a directory that must not exist yet: the files go to a hidden staging
directory beside it, which is renamed to OUTPUT once every file is written, so OUTPUT
never holds a partial result and nothing that exists is ever overwritten.

Resources: each actor asks Ray for `--threads` CPUs and runs inference on that many
threads; give `--actors` x `--threads` = the cores of the machine (or of each node times
the nodes on a cluster). The images are read by the actors, so on a cluster the paths
must be on storage every node sees (docs/python.md, "Batch jobs with Ray Data").
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Sequence

import numpy as np
import pyarrow as pa

import damoyolo

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# One explicit schema for every batch: a batch without any detection (or
# with only failed images) then still writes the same column types.
SCHEMA = pa.schema([
    ("path", pa.string()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("boxes", pa.list_(pa.list_(pa.float32()))),
    ("scores", pa.list_(pa.float32())),
    ("class_ids", pa.list_(pa.int64())),
    ("class_names", pa.list_(pa.string())),
    ("error", pa.string()),
])


def list_images(sources: Sequence[str]) -> List[str]:
    """Directories (recursive, name order), globs and plain file paths, as
    absolute paths (actors may run in another working directory)."""
    out: List[str] = []
    for s in sources:
        if os.path.isdir(s):
            for root, dirs, files in os.walk(s):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_SUFFIXES))
        elif os.path.exists(s):
            out.append(s)
        else:
            matches = sorted(p for p in glob.glob(s, recursive=True) if os.path.isfile(p))
            if not matches:
                raise FileNotFoundError(f"no such file, directory or glob match: {s}")
            out.extend(matches)
    return [os.path.abspath(p) for p in out]


def pack_model(model: str) -> dict:
    """The model file and its labels sidecar (<stem>.labels.txt or
    <stem>.names, which the Detector reads when present), as bytes: for
    `ship_model`, where the nodes cannot read the driver's files."""
    model = os.path.abspath(model)
    stem = os.path.splitext(model)[0]
    files = {}
    for path in (model, stem + ".labels.txt", stem + ".names"):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                files[os.path.basename(path)] = f.read()
    if os.path.basename(model) not in files:
        raise FileNotFoundError(f"model '{model}' not found")
    return dict(name=os.path.basename(model), files=files)


class DamoyoloPredictor:
    """The callable class `map_batches` runs in each actor: a batch of paths
    in, one row of detections (or an error) per path out.

    model: a path the actor can read, or pack_model()'s dict (or a Ray object
    reference to it), which is written into a temporary folder of the actor's
    node first."""

    def __init__(self, model, threads: int = 1, conf: Optional[float] = None, iou: Optional[float] = None,
                 max_det: int = 500):
        self._tmp = None
        if not isinstance(model, (str, os.PathLike)):
            import ray

            packed = ray.get(model) if isinstance(model, ray.ObjectRef) else model
            self._tmp = tempfile.TemporaryDirectory(prefix="damoyolo_model_")
            for name, data in packed["files"].items():
                with open(os.path.join(self._tmp.name, name), "wb") as f:
                    f.write(data)
            model = os.path.join(self._tmp.name, packed["name"])
        self.detector = damoyolo.Detector(model, conf=conf, iou=iou, max_det=max_det, threads=threads)

    def __call__(self, batch: Dict[str, np.ndarray]) -> pa.Table:
        rows = {name: [] for name in SCHEMA.names}
        for path in batch["path"]:
            path = str(path)
            try:
                r = self.detector(path)
            except (damoyolo.Error, OSError) as e:
                # damoyolo.Error: undecodable or unsupported data; OSError:
                # missing or unreadable file. Anything else is a bug: let it fail.
                height = width = 0
                boxes, scores, ids, names = [], [], [], []
                error = f"{type(e).__name__}: {e}"
            else:
                height, width = r.orig_shape
                boxes = r.xyxy.tolist()
                scores, ids, names = r.confidence.tolist(), r.class_id.tolist(), list(r.class_name)
                error = None
            for name, value in zip(SCHEMA.names, (path, height, width, boxes, scores, ids, names, error)):
                rows[name].append(value)
        return pa.Table.from_pydict(rows, schema=SCHEMA)


def detect_dataset(paths: Sequence[str], model: str, actors: int = 1, threads: int = 1, batch_size: int = 16,
                   ship_model: bool = False, **detector_args):
    """The Ray dataset of detection rows for `paths` (lazy: nothing runs until
    it is consumed or written). ship_model: send the model's bytes through
    Ray's object store (once per node) instead of its path."""
    import ray
    import ray.data

    model_arg = ray.put(pack_model(model)) if ship_model else os.path.abspath(model)
    ds = ray.data.from_items([{"path": p} for p in paths])
    return ds.map_batches(
        DamoyoloPredictor,
        fn_constructor_kwargs=dict(model=model_arg, threads=threads, **detector_args),
        batch_size=batch_size,
        # A fixed pool of `actors` actors, each with its own Detector (Ray
        # 2.51+ spells the older `concurrency=actors` this way).
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,  # what each actor reserves: its inference threads
        batch_format="numpy",
    )


def write(ds, output: str, fmt: str = "parquet") -> None:
    """Writes `ds` into the new directory `output`, whole or not at all."""
    import ray.data

    output = os.path.abspath(output)
    if os.path.lexists(output):
        raise FileExistsError(f"output '{output}' exists; give a new path (nothing is overwritten)")
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"the directory '{parent}' for the output does not exist")
    staging = os.path.join(parent, f".{os.path.basename(output)}.partial-{uuid.uuid4().hex[:12]}")
    # The write tasks only move rows to files: no CPU reserved, so they never
    # wait for the cores the actors hold.
    common = dict(mode=ray.data.SaveMode.ERROR, ray_remote_args={"num_cpus": 0})
    if fmt not in ("parquet", "jsonl"):
        raise ValueError(f"format must be 'parquet' or 'jsonl', got {fmt!r}")
    try:
        if fmt == "parquet":
            ds.write_parquet(staging, **common)
        else:
            # pandas' to_json: 15 decimals (its maximum) instead of 10.
            ds.write_json(staging, double_precision=15, **common)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # ours alone (a fresh name): no partial output stays
        raise
    if os.path.lexists(output):  # created by someone else while the job ran
        raise FileExistsError(f"output '{output}' appeared during the job; the results are in '{staging}'")
    os.rename(staging, output)


def count_rows(output: str, fmt: str = "parquet"):
    """(rows, failed rows) of a finished output directory."""
    rows = failed = 0
    for name in sorted(os.listdir(output)):
        path = os.path.join(output, name)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            errors = pq.read_table(path, columns=["error"]).column("error")
            rows += len(errors)
            failed += len(errors) - errors.null_count
        else:
            with open(path) as f:
                for line in f:
                    if line.strip():
                        rows += 1
                        failed += json.loads(line)["error"] is not None
    return rows, failed


def is_local(address: Optional[str]) -> bool:
    """Whether ray.init(address) starts a Ray of its own: no address given,
    and none in RAY_ADDRESS (which `ray job submit` sets for its driver)."""
    return address is None and not os.environ.get("RAY_ADDRESS")


def init_ray(address: Optional[str] = None, num_cpus: Optional[int] = None, object_store_mb: Optional[int] = None):
    """ray.init for this job, unless the caller has already connected. The
    example's module travels to the workers by value, so a cluster needs only
    damoyolo installed on every node, not this file."""
    import ray
    import ray.cloudpickle

    if __name__ != "__main__":
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if ray.is_initialized():
        return
    args = dict(address=address, include_dashboard=False)
    if is_local(address):  # a local Ray instance of our own
        args.update(num_cpus=num_cpus,
                    object_store_memory=object_store_mb * 2**20 if object_store_mb else None)
    ray.init(**args)


def run(sources: Sequence[str], model: str, output: str, actors: int = 1, threads: int = 1, batch_size: int = 16,
        fmt: str = "parquet", address: Optional[str] = None, ship_model: bool = False, **detector_args) -> dict:
    """The whole job; returns its summary."""
    # Checked before Ray starts: a bad output path costs nothing.
    if os.path.lexists(output):
        raise FileExistsError(f"output '{output}' exists; give a new path (nothing is overwritten)")
    paths = list_images(sources)
    if not paths:
        raise FileNotFoundError(f"no images (.jpg, .jpeg, .png, .bmp) in {list(sources)}")
    init_ray(address, num_cpus=max(os.cpu_count() or 1, actors * threads) if is_local(address) else None)
    start = time.perf_counter()
    write(detect_dataset(paths, model, actors=actors, threads=threads, batch_size=batch_size, ship_model=ship_model,
                         **detector_args), output, fmt)
    seconds = time.perf_counter() - start
    rows, failed = count_rows(output, fmt)
    return dict(images=len(paths), rows=rows, failed=failed, seconds=seconds, images_per_s=len(paths) / seconds,
                output=os.path.abspath(output))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", help="image directories (recursive), globs or files")
    p.add_argument("-m", "--model", required=True, help="DAMO-YOLO ONNX model (a path every node can read)")
    p.add_argument("-o", "--output", required=True, help="new output directory (must not exist)")
    p.add_argument("--actors", type=int, default=None,
                   help="detector actors (default: the CPUs Ray sees divided by --threads)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (and Ray CPUs) per actor")
    p.add_argument("--batch-size", type=int, default=16, help="images per map_batches call")
    p.add_argument("--format", choices=("parquet", "jsonl"), default="parquet")
    p.add_argument("--address", default=None,
                   help="a running Ray cluster (default: RAY_ADDRESS, which `ray job submit` sets, else a local Ray)")
    p.add_argument("--ship-model", action="store_true",
                   help="send the model file (and its labels sidecar) to the actors through Ray's object store, "
                        "for nodes that cannot read its path")
    p.add_argument("--conf", type=float, default=None)
    p.add_argument("--iou", type=float, default=None)
    p.add_argument("--max-det", type=int, default=500)
    a = p.parse_args(argv)
    if a.threads < 1 or (a.actors is not None and a.actors < 1) or a.batch_size < 1:
        p.error("--actors, --threads and --batch-size must be >= 1")
    if os.path.lexists(a.output):
        p.error(f"output '{a.output}' exists; give a new path (nothing is overwritten)")
    actors = a.actors
    if actors is None:
        if is_local(a.address):
            actors = max(1, (os.cpu_count() or 1) // a.threads)
        else:
            import ray

            init_ray(a.address)
            actors = max(1, int(ray.cluster_resources().get("CPU", 1)) // a.threads)
    summary = run(a.inputs, a.model, a.output, actors=actors, threads=a.threads, batch_size=a.batch_size,
                  fmt=a.format, address=a.address, ship_model=a.ship_model, conf=a.conf, iou=a.iou,
                  max_det=a.max_det)
    print(f"{summary['images']} images, {summary['failed']} failed, {actors} actor(s) x {a.threads} thread(s), "
          f"{summary['seconds']:.1f} s ({summary['images_per_s']:.1f} images/s) -> {summary['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

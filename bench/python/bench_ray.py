"""Images/s of examples/python/ray_batch.py against a plain Detector loop (docs/python.md).

    build/python/venv/bin/python bench/python/bench_ray.py MODEL IMAGE... [--count N] [--rounds R]

Makes N files (hard links to IMAGE... in turn) in a temporary folder, then, per round:
the plain loop (one Detector, threads=None, called on each path from the main thread)
and one Detector(threads=1) called from 2 Python threads (the two fastest in-process uses
per docs/python.md "Threads"), and the Ray Data job
(`ray_batch.run`, parquet output) with 1 actor x 2 threads and 2 actors x 1 thread on
one local Ray instance (2 CPUs). The Ray figure is the job's wall time from building
the dataset to the renamed output: it includes starting the actors and loading the
model in each, not ray.init (printed once). Each Ray configuration also runs on the
first N/5 files; (N - N/5) / (difference of the two times) is its rate once running.
"""

import argparse
import concurrent.futures
import os
import pathlib
import sys
import tempfile
import time

import damoyolo

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "examples" / "python"))
import ray_batch  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_ray_") as tmp:
        src = pathlib.Path(tmp) / "images"
        src.mkdir()
        for i in range(a.count):
            image = pathlib.Path(a.images[i % len(a.images)])
            os.link(image, src / f"{i:06d}{image.suffix}")
        paths = ray_batch.list_images([str(src)])

        det = damoyolo.Detector(a.model)
        det(paths[0])  # warm up outside the timing, as the actors' first batch is not
        det1 = damoyolo.Detector(a.model, threads=1)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(det1, paths[:2]))
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20, log_to_driver=False)
        print(f"ray.init: {time.perf_counter() - t:.1f} s; {len(paths)} images, {os.path.basename(a.model)}")
        ray.data.DataContext.get_current().enable_progress_bars = False
        few = paths[: len(paths) // 5]
        for rnd in range(a.rounds):
            t = time.perf_counter()
            for path in paths:
                det(path)
            s = time.perf_counter() - t
            print(f"round {rnd}: plain Detector loop (threads=None): {len(paths) / s:6.1f} images/s ({s:.1f} s)",
                  flush=True)
            t = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                list(pool.map(det1, paths))
            s = time.perf_counter() - t
            print(f"round {rnd}: one Detector(threads=1) from 2 Python threads: {len(paths) / s:6.1f} images/s "
                  f"({s:.1f} s)", flush=True)
            for actors, threads in ((1, 2), (2, 1)):
                seconds = []
                for subset in (paths, few):
                    out = pathlib.Path(tmp) / f"out_{rnd}_{actors}x{threads}_{len(subset)}"
                    r = ray_batch.run(subset, a.model, str(out), actors=actors, threads=threads, batch_size=16)
                    assert r["rows"] == len(subset) and r["failed"] == 0
                    seconds.append(r["seconds"])
                # The job's rate, and the rate past the fixed costs (actor
                # start, model load): the extra images over the extra time.
                marginal = (len(paths) - len(few)) / (seconds[0] - seconds[1])
                print(f"round {rnd}: Ray Data, {actors} actor(s) x {threads} thread(s): {len(paths) / seconds[0]:6.1f} "
                      f"images/s ({seconds[0]:.1f} s; {len(few)} images: {seconds[1]:.1f} s; "
                      f"past the fixed costs: {marginal:.1f} images/s)", flush=True)
        ray.shutdown()


if __name__ == "__main__":
    main()

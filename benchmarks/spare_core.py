"""A work process's job with and without a spare core: `python benchmarks/spare_core.py [--faces-dir DIR]`.

The performance benchmark's job (its user photo at 0.25, 1 and 4 MP into its template:
decode, detect, fuse, re-encode the tiles) in one process, as a work process runs it, alternately
with pieces handed to the helper thread (facefuse.parallel) and without; prints the
medians and the median of the paired differences. Both give the same bytes (checked).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from facefuse.workpool import single_threaded_libraries, tune_for_compute

single_threaded_libraries()  # before numpy loads, as in a work process

import numpy as np  # noqa: E402
from perfbench.inputs import choose_photos, make_input  # noqa: E402
from PIL import Image  # noqa: E402

from facefuse import parallel  # noqa: E402
from facefuse.service import FuseJob, FuseService, UserPhoto  # noqa: E402
from facefuse.settings import Settings  # noqa: E402
from facefuse.storage.blobs import LocalBlobStore  # noqa: E402
from facefuse.storage.db import SqliteDatabase  # noqa: E402
from facefuse.templates.registry import TemplateRegistry  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    tune_for_compute()
    user_photo, template_photo = choose_photos(args.faces_dir)
    photo = Image.open(user_photo).convert("RGB")
    with tempfile.TemporaryDirectory(prefix="facefuse-spare-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        registry = TemplateRegistry(
            SqliteDatabase(settings.db_path), LocalBlobStore(settings.data_dir), result_quality=settings.jpeg_quality
        )
        template_id = registry.add(template_photo.read_bytes()).template_id
        service = FuseService(settings, registry)
        spare = {"now": False}
        parallel.use_spare_cores(lambda: spare["now"])
        for megapixels in (0.25, 1.0, 4.0):
            job = FuseJob(users=[UserPhoto(make_input(photo, megapixels).jpeg)], template_id=template_id)
            times = _paired(service, job, spare, args.pairs)
            alone, helped = np.array(times[False]), np.array(times[True])
            print(
                f"{megapixels:g} MP: one core {np.median(alone):.2f} ms, a spare core {np.median(helped):.2f} ms, "
                f"paired difference {np.median(helped - alone):+.2f} ms ({len(alone)} pairs)"
            )


def _paired(service: FuseService, job: FuseJob, spare: dict[str, bool], pairs: int) -> dict[bool, list[float]]:
    answers = {}
    for with_spare in (False, True, False, True):  # warm-up, and the same bytes both ways
        spare["now"] = with_spare
        answers[with_spare] = service.fuse_to_jpeg(job)
    assert answers[False] == answers[True], "a spare core changed the result"
    times: dict[bool, list[float]] = {False: [], True: []}
    for index in range(pairs):
        for with_spare in (False, True) if index % 2 else (True, False):  # neither always goes first
            spare["now"] = with_spare
            started = time.perf_counter()
            service.fuse_to_jpeg(job)
            times[with_spare].append((time.perf_counter() - started) * 1000)
    return times


if __name__ == "__main__":
    main()

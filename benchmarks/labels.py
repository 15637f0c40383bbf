"""What labelling costs a 1 MP fusion: `python benchmarks/labels.py [--faces-dir DIR] [--runs N]`.

The performance benchmark's photos (perfbench.inputs.choose_photos), the template scaled to
about 1 MP and kept encoded as a work process keeps it, the user photo at 1 MP. In one
process, as a work process runs it, each step after fusion on the same fused result, in
turn, N times: the visible mark drawn on the pixels, the tiles under it encoded (alone, with
the joining of the file's tiles an encode does anyway: an upper bound), the XMP label written, and, apart,
the C2PA manifest signed with a throwaway certificate chain (tests/signing_chain.py).
Prints the median and the 90th percentile of each, and the fusion's own time for scale.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from facefuse.workpool import single_threaded_libraries, tune_for_compute

single_threaded_libraries()  # before numpy loads, as in a work process

import numpy as np  # noqa: E402
from perfbench.inputs import choose_photos, make_input  # noqa: E402
from PIL import Image  # noqa: E402

from facefuse.media.credentials import ContentCredentials  # noqa: E402
from facefuse.media.mark import draw_mark  # noqa: E402
from facefuse.media.provenance import ContentLabel, with_xmp  # noqa: E402
from facefuse.service import FuseJob, FuseService, UserPhoto, fuse_scene, ingredients  # noqa: E402
from facefuse.settings import Settings  # noqa: E402
from facefuse.storage.db import Database  # noqa: E402
from facefuse.templates.registry import TemplateRegistry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEGAPIXELS = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=REPO.parent / "shared" / "faces")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    tune_for_compute()
    sys.path.insert(0, str(REPO / "tests"))
    from signing_chain import make_chain  # the tests' throwaway chain: no key of anyone's

    user_photo, template_photo = choose_photos(args.faces_dir)
    template = make_input(Image.open(template_photo).convert("RGB"), MEGAPIXELS)
    user = make_input(Image.open(user_photo).convert("RGB"), MEGAPIXELS)
    with tempfile.TemporaryDirectory(prefix="facefuse-labels-") as tmp:
        settings = Settings(data_dir=Path(tmp))
        registry = TemplateRegistry(Database(settings.db_path), settings.templates_dir, result_quality=95)
        template_id = registry.add(template.jpeg).template_id
        service = FuseService(settings, registry)
        job = FuseJob(users=[UserPhoto(user.jpeg)], template_id=template_id)
        scene = service.load_scene(job)
        placed = service.place_users(job.users, scene.faces)
        result = fuse_scene(scene, placed, service.options(job, scene))
        kept = scene.encoded
        assert kept is not None, "the registry keeps the template encoded"
        face_box = scene.prepared[placed[0].template_face_index].changed_box()
        chain = make_chain()
        credentials = ContentCredentials(chain.chain_pem, chain.key_pem)
        marked = result.copy()
        mark = draw_mark(marked, service.labeller.style)
        plain_jpeg = kept.with_regions(result, [face_box])
        job_ingredients = ingredients(job, scene)
        label = ContentLabel(template_id=template_id)
        labelled = with_xmp(plain_jpeg, label)
        print(
            f"{template_photo.name} at {template.width}x{template.height} ({template.megapixels:.2f} MP), "
            f"user {user_photo.name} at {user.megapixels:.2f} MP; mark box {mark}; {args.runs} runs each"
        )
        steps: dict[str, Callable[[], object]] = {
            "fusion (decode, detect, fuse; for scale)": lambda: service.fuse(job),
            "mark: draw on the pixels": lambda: draw_mark(result.copy(), service.labeller.style),
            "encode without the mark (for scale)": lambda: kept.with_regions(result, [face_box]),
            "mark's tiles: encode": lambda: kept.with_regions(marked, [mark]),
            "XMP label: write": lambda: with_xmp(plain_jpeg, ContentLabel(template_id=template_id)),
            "C2PA: sign (apart)": lambda: credentials.sign(labelled, label, job_ingredients),
        }
        copy_ms = _timed(lambda: result.copy(), args.runs)
        times = {name: _timed(step, args.runs) for name, step in steps.items()}
        times["mark: draw on the pixels"] = times["mark: draw on the pixels"] - np.median(copy_ms)
        for name, ms in times.items():
            print(f"  {name:45s} median {np.median(ms):7.3f} ms   p90 {np.percentile(ms, 90):7.3f} ms")
        labels = ("mark: draw on the pixels", "mark's tiles: encode", "XMP label: write")
        total = sum(float(np.median(times[name])) for name in labels)
        print(f"labels (mark + its tiles + XMP): {total:.3f} ms a 1 MP result (target <= 2 ms); C2PA apart")
        registry.db.close()


def _timed(step: Callable[[], object], runs: int) -> np.ndarray:
    step()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000)
    return np.array(times)


if __name__ == "__main__":
    main()

"""What a change costs a fusion: this tree against another, paired, in two processes.

    .venv/bin/python benchmarks/fusion_ab.py --against OLD/src [--rounds 10] [--runs 8]
        [--faces-dir ../shared/faces] [--template-pixels 1000000]

Each side runs in a process of its own (PYTHONPATH: this tree's src, or OLD/src), loads
the same pairs (user photo, template scaled to 1 MP or --template-pixels, prepared once) and, round by round,
times `--runs` fusions of each pair: the user side of a request (service.uncovered where
the tree has it, then service.fuse_user where the tree has it, else fuse_prepared: the
hand model where fusion asks for it), detection of the user's face excluded. One user
has a hand pasted over the cheek (benchmarks/cutouts.py). The two sides alternate which
goes first; the report is each side's median and the median of the paired differences
per pair (new - old, ms). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FACES = REPO.parent / "shared" / "faces"
PAIRS = (
    ("deepface__img2.jpg", "deepface__img30.jpg", "frontal selfie"),
    ("face_recognition__examples_obama.jpg", "face_recognition__examples_biden.jpg", "frontal selfie"),
    ("face_recognition__examples_knn_examples_train_kit_harington_john2.jpeg", "deepface__img11.jpg", "turned head"),
    ("deepface__img24.jpg", "deepface__img11.jpg", "user in glasses"),
    ("face_recognition__examples_obama.jpg", "face_recognition__examples_biden.jpg", "frontal, a hand over it"),
)
WITH_A_HAND = "a hand over it"
TEMPLATE_PIXELS = 1_000_000


def serve(faces_dir: Path, runs: int, template_pixels: int) -> None:
    """One side: read a line per round from stdin, answer the medians (ms) of each pair."""
    import cv2

    from facefuse.fusion.fuse import FuseOptions, fuse_prepared, prepare_template
    from facefuse.media.decode import decode_image
    from facefuse.media.limits import ImageLimits
    from facefuse.vision.detect import detect_faces

    try:
        from facefuse.service import uncovered
    except ImportError:  # a tree from before the user's photo was cleaned of covers

        def uncovered(image, face):  # type: ignore[no-untyped-def]
            return image, face

    try:
        from facefuse.service import fuse_user
    except ImportError:  # a tree from before hands over the user's face were looked for
        fuse_user = fuse_prepared

    import cutouts  # this tree's benchmarks/: the same hand pasted for both sides

    limits = ImageLimits(max_bytes=64 << 20, min_side=16, max_side=8192)

    def load(name: str):  # type: ignore[no-untyped-def]
        rgb = decode_image((faces_dir / name).read_bytes(), limits)
        return rgb, max(detect_faces(rgb), key=lambda f: f.size)

    jobs = []
    for user, template, kind in PAIRS:
        u_rgb, u_face = load(user)
        if kind.endswith(WITH_A_HAND):
            u_rgb = cutouts.paste(u_rgb, u_face.points[[33, 263]], "hand")
            u_face = max(detect_faces(u_rgb), key=lambda f: f.size)
        t_rgb, _ = load(template)
        scale = (template_pixels / (t_rgb.shape[0] * t_rgb.shape[1])) ** 0.5
        t_rgb = cv2.resize(t_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        prepared = prepare_template(t_rgb, max(detect_faces(t_rgb), key=lambda f: f.size))
        jobs.append((prepared, u_rgb, u_face))

    def run(job) -> None:  # type: ignore[no-untyped-def]
        prepared, image, face = job
        fuse_user(prepared, *uncovered(image, face), FuseOptions())

    for job in jobs:
        run(job)
    for _ in sys.stdin:
        medians = []
        for job in jobs:
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                run(job)
                times.append((time.perf_counter() - start) * 1000)
            medians.append(statistics.median(times))
        print(" ".join(f"{m:.3f}" for m in medians), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", type=Path, required=True, help="the other tree's src folder")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--faces-dir", type=Path, default=DEFAULT_FACES)
    parser.add_argument(
        "--template-pixels", type=int, default=TEMPLATE_PIXELS, help="each template is scaled to this many pixels"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.faces_dir, args.runs, args.template_pixels)
        return 0
    sides = {}
    for name, src in (("old", args.against.resolve()), ("new", REPO / "src")):
        env = dict(os.environ, PYTHONPATH=str(src))
        sides[name] = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                "--runs",
                str(args.runs),
                "--faces-dir",
                str(args.faces_dir),
                "--against",
                str(args.against),
                "--template-pixels",
                str(args.template_pixels),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
    rows: dict[str, list[list[float]]] = {"old": [], "new": []}
    for round_ in range(args.rounds):
        for name in ("old", "new") if round_ % 2 == 0 else ("new", "old"):
            side = sides[name]
            assert side.stdin is not None and side.stdout is not None
            side.stdin.write("go\n")
            side.stdin.flush()
            rows[name].append([float(x) for x in side.stdout.readline().split()])
    for side in sides.values():
        assert side.stdin is not None
        side.stdin.close()
        side.wait()
    print(f"{'pair':70s} {'old ms':>8s} {'new ms':>8s} {'new-old':>8s}")
    for i, (user, template, kind) in enumerate(PAIRS):
        old = [r[i] for r in rows["old"]]
        new = [r[i] for r in rows["new"]]
        diff = statistics.median(n - o for n, o in zip(new, old))
        label = f"{user[:28]} -> {template[:22]} ({kind})"
        print(f"{label:70s} {statistics.median(old):8.2f} {statistics.median(new):8.2f} {diff:+8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

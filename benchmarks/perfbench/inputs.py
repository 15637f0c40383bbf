"""What the benchmark sends and what it compares with: the photos, taken from --faces-dir;
the inputs made from the user photo at each size; the floor (the least any request
costs); and the machine's own scaling with no HTTP (ComputeProbe)."""

from __future__ import annotations

import base64
import contextlib
import io
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np
from PIL import Image

from facefuse.errors import FacefuseError
from facefuse.fusion.fuse import FuseOptions, fuse_prepared, prepare_template
from facefuse.media.decode import check_image, decode_base64, decode_image
from facefuse.media.encode import encode_jpeg
from facefuse.settings import Settings
from facefuse.vision.detect import detect_faces
from facefuse.workpool import single_threaded_libraries, tune_for_compute, usable_cores
from perfbench.report import ComputeScaling, InputInfo

# The pair every run in docs/performance.md was measured with (a 1536x1152 frontal
# portrait into a 1200x1200 one): taken when --faces-dir holds them, so runs compare.
USER_PHOTO = "deepface__img2.jpg"
TEMPLATE_PHOTO = "face_recognition__examples_knn_examples_train_biden_biden2.jpg"
SIZES_MP = (0.25, 1.0, 4.0, 16.0)
MAX_BYTES = 2 * 1024 * 1024
MAX_SIDE = 4096
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def choose_photos(faces_dir: Path, user: Path | None = None, template: Path | None = None) -> tuple[Path, Path]:
    """The user photo and the template photo: those given; else the pair of USER_PHOTO and
    TEMPLATE_PHOTO when faces_dir holds it; else the largest photos of faces_dir that the
    service accepts and in which exactly one face is found, the largest as the user's."""
    if user is None and (faces_dir / USER_PHOTO).is_file():
        user = faces_dir / USER_PHOTO
    if template is None and (faces_dir / TEMPLATE_PHOTO).is_file():
        template = faces_dir / TEMPLATE_PHOTO
    if user is not None and template is not None:
        return user, template
    found = iter(_one_face_photos(faces_dir, exclude={p for p in (user, template) if p is not None}))
    user = user or next(found, None)
    template = template or next(found, None)
    if user is None or template is None:
        raise SystemExit(f"{faces_dir}: no two photos with one face each (give --user-photo and --template-photo)")
    return user, template


def _one_face_photos(faces_dir: Path, exclude: set[Path]):
    """Photos of faces_dir within the image rules, largest first, in which one face is found."""
    sized = []
    for path in sorted(faces_dir.iterdir()):
        if path.suffix.lower() not in _PHOTO_SUFFIXES or path in exclude:
            continue
        try:
            _, width, height = check_image(path.read_bytes())
        except (FacefuseError, OSError):
            continue
        sized.append((-width * height, path))
    for _, path in sorted(sized):
        try:
            if len(detect_faces(decode_image(path.read_bytes()))) == 1:
                yield path
        except FacefuseError:
            continue


@dataclass(frozen=True)
class Input:
    nominal: float
    megapixels: float
    width: int
    height: int
    quality: int
    jpeg: bytes

    @property
    def label(self) -> str:
        return f"{self.nominal:g} MP"

    def info(self) -> InputInfo:
        return InputInfo(self.label, self.width, self.height, len(self.jpeg), self.quality)


def make_input(photo: Image.Image, megapixels: float) -> Input:
    """The photo scaled to about `megapixels`, within 4096 px a side and 2 MB."""
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    scale = min(scale, MAX_SIDE / max(photo.size))
    size = (round(photo.width * scale), round(photo.height * scale))
    resized = photo.resize(size, Image.Resampling.LANCZOS)
    for quality in (92, 88, 84, 80, 75, 70, 60, 50):
        buffer = io.BytesIO()
        resized.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= MAX_BYTES:
            return Input(megapixels, size[0] * size[1] / 1e6, size[0], size[1], quality, buffer.getvalue())
    raise RuntimeError("could not fit the input into 2 MB")


def floor_once(text: str, result_rgb: np.ndarray, quality: int) -> float:
    """The least any request costs, in ms: base64 text -> bytes -> full-size pixels ->
    faces and landmarks, plus encoding a result-sized image (the template's own pixels) as
    the service does (quality 95, 4:4:4). Nothing else: no fusion, no HTTP."""
    started = time.perf_counter()
    rgb = decode_image(decode_base64(text))
    faces = detect_faces(rgb)
    encode_jpeg(result_rgb, quality)
    elapsed = (time.perf_counter() - started) * 1000
    assert faces, "the benchmark photo must have a face"
    return elapsed


class ComputeProbe:
    """The machine's own scaling, no HTTP: a work process's job (decode, detect, fuse,
    encode the 1 MP input into the template) in one process alone, then in one process
    per core at once. Cores that share caches, memory bandwidth or a physical core make
    each job slower when all compute; no pool of work processes can give more than that
    over one. Measured in rounds between the service's loaded runs, as it moves from
    minute to minute on a shared machine."""

    def __init__(self, item: Input, template_jpeg: bytes, runs: int) -> None:
        self._cores = sorted(usable_cores()) or list(range(os.cpu_count() or 1))
        self.cores = len(self._cores)
        self._job = (base64.b64encode(item.jpeg).decode(), template_jpeg, runs)
        single_threaded_libraries()  # as the service's work processes
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            self.cores, mp_context=context, initializer=_start_probe_process, initargs=(context.Barrier(self.cores),)
        )
        self.alone: list[float] = []
        self.together: list[list[float]] = [[] for _ in range(self.cores)]

    def round(self) -> None:
        """Jobs in one process, then in every process at once, each on a core of its own (as the
        service's work processes, one per core, run; one alone is not pinned either)."""
        self.alone += self._pool.submit(_compute_runs, *self._job, None).result()
        futures = [self._pool.submit(_compute_runs, *self._job, core) for core in self._cores]
        for times, future in zip(self.together, futures):
            times += future.result()

    def close(self) -> None:
        self._pool.shutdown()

    def result(self) -> ComputeScaling:
        alone_ms = float(np.median(self.alone))
        together_ms = [float(np.median(t)) for t in self.together]
        return ComputeScaling(self.cores, alone_ms, together_ms, sum(alone_ms / t for t in together_ms))


@dataclass
class _ProbeProcess:
    """What a probe process keeps from its start: the barrier all of them meet at, and the
    cores it may run on."""

    barrier: Barrier | None = None
    cores: frozenset[int] = frozenset()


_probe = _ProbeProcess()


def _start_probe_process(barrier: Barrier) -> None:
    _probe.barrier, _probe.cores = barrier, frozenset(usable_cores())


def _compute_runs(text: str, template_jpeg: bytes, runs: int, core: int | None) -> list[float]:
    """ms per job, `runs` jobs after a warm-up; with a core, all of this process's threads on
    it and only when every process of the pool is warm too (each holds one such call)."""
    tune_for_compute()
    cores = {core} if core is not None else set(_probe.cores)
    if cores and hasattr(os, "sched_setaffinity"):
        for thread in os.listdir("/proc/self/task"):  # mediapipe's threads too, started earlier
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(thread), cores)
    template_rgb = decode_image(template_jpeg)
    prepared = prepare_template(template_rgb, detect_faces(template_rgb)[0])
    quality, options = Settings().jpeg_quality, FuseOptions()

    def once() -> float:
        started = time.perf_counter()
        rgb = decode_image(decode_base64(text))
        fused = fuse_prepared(prepared, rgb, detect_faces(rgb)[0], options)
        encode_jpeg(fused, quality)
        return (time.perf_counter() - started) * 1000

    for _ in range(3):
        once()
    if core is not None and _probe.barrier is not None:
        _probe.barrier.wait(timeout=120)
    return [once() for _ in range(runs)]

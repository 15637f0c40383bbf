"""fusion/detail.py: the template's sharpness and grain on the fused face, cheek by cheek.

Pure functions on arrays: a face whose two halves differ in fine detail (a turned head:
one cheek sharp, the other stretched smooth) against templates of known grain."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facefuse.fusion import detail

SIZE = 240


def _grain(seed: int, level: float) -> np.ndarray:
    """Fine noise of about `level` levels of rms at the finest band, over mid grey."""
    noise = np.random.default_rng(seed).normal(0.0, level, (SIZE, SIZE)).astype(np.float32)
    return np.clip(128.0 + noise, 0, 255)


def _face(left_level: float, right_level: float) -> np.ndarray:
    """(h, w, 3) float32: the left half with grain of `left_level`, the right of `right_level`."""
    plane = np.where(np.arange(SIZE) < SIZE // 2, _grain(1, left_level), _grain(2, right_level))
    return np.ascontiguousarray(np.repeat(plane[..., None], 3, axis=2), dtype=np.float32)


def _template(level: float) -> detail.TemplateDetail:
    grey = _grain(3, level).astype(np.uint8)
    return detail.TemplateDetail.of(np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)))


def _fine_energy(face: np.ndarray, columns: slice) -> float:
    luma = cv2.cvtColor(face.astype(np.float32), cv2.COLOR_RGB2GRAY)
    fine = luma - cv2.GaussianBlur(luma, (0, 0), 1.0)
    inner = fine[20:-20, columns]
    return float((inner * inner).mean())


LEFT, RIGHT = slice(20, SIZE // 2 - 30), slice(SIZE // 2 + 30, SIZE - 20)


def _matched(face: np.ndarray, template: detail.TemplateDetail, skin: np.ndarray) -> np.ndarray:
    """match_detail, then its grain added as the blend adds it (by rows: here in two halves)."""
    out, grain = detail.match_detail(face.copy(), template, skin, np.zeros_like(skin))
    if grain is not None:
        grain.add(out, template, slice(0, SIZE // 2))
        grain.add(out, template, slice(SIZE // 2, SIZE))
    return out


def test_a_smooth_and_a_sharp_cheek_both_take_the_templates_fine_detail() -> None:
    face = _face(left_level=0.0, right_level=12.0)
    template = _template(level=4.0)
    skin = np.ones((SIZE, SIZE), np.float32)
    target = _fine_energy(np.repeat(template.luma[..., None], 3, axis=2), slice(20, SIZE - 20))

    out = _matched(face, template, skin)

    before = _fine_energy(face, LEFT), _fine_energy(face, RIGHT)
    after = _fine_energy(out, LEFT), _fine_energy(out, RIGHT)
    assert before[0] < 0.05 * target and before[1] > 4 * target
    for side in after:
        assert side == pytest.approx(target, rel=0.3)


def test_only_the_skin_changes() -> None:
    face = _face(left_level=0.0, right_level=12.0)
    skin = np.zeros((SIZE, SIZE), np.float32)
    skin[:, : SIZE // 2] = 1.0
    out = _matched(face, _template(level=4.0), skin)

    assert np.array_equal(out[:, SIZE // 2 + 10 :], face[:, SIZE // 2 + 10 :])
    assert not np.array_equal(out[:, : SIZE // 2], face[:, : SIZE // 2])


def test_a_flat_template_lends_no_grain_and_takes_the_users_away() -> None:
    face = _face(left_level=6.0, right_level=6.0)
    flat = detail.TemplateDetail.of(np.full((SIZE, SIZE, 3), 128, np.uint8))
    skin = np.ones((SIZE, SIZE), np.float32)

    out = _matched(face, flat, skin)

    assert _fine_energy(out, LEFT) < 0.05 * _fine_energy(face, LEFT)


def test_skin_weights_a_little_below_zero_give_no_holes() -> None:
    """The skin weight grown from the canvas overshoots a little below 0 along its edges; a
    block of such skin alone once gave a negative energy and a NaN grain: black blocks in
    the result beside a template's hand."""
    face = _face(left_level=0.0, right_level=12.0)
    skin = np.ones((SIZE, SIZE), np.float32)
    skin[:, : SIZE // 3] = -0.0005
    with np.errstate(invalid="raise"):
        out = _matched(face, _template(level=4.0), skin)
    assert np.isfinite(out).all()

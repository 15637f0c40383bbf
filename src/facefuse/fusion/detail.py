"""The template's sharpness and grain on the fused face: a soft-focus or low-resolution
template stays soft, a grainy one lends the user's skin its grain, cheek by cheek.

The template's detail is read on its face region as it is in the template, not as warped
onto the fused landmarks: a bilinear warp keeps as little as half of the finest band's rms
where it samples between pixels, so the warped copy is softer than the template around the
face, and its grain would move with the user's landmarks. Unwarped, the grain is the
template's own, at its own strength, wherever the user's face lands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion.masks import smoothstep

# The face is split into this many blocks across (as many down, by its shape) where its
# skin's finest detail is evened out to the template's: a cheek's worth of skin each.
FINE_BLOCKS = 12
# The template's finest band is lent clipped to this many times its block's rms: grain and
# pores come over, its edges (a wrinkle, a feature's rim warped onto skin) do not.
GRAIN_LIMIT = 2.0
# The grain comes in full where the skin weight (TemplateSkin.shared at full size, a
# likelihood, below 1 over much plain skin) is over the top of this ramp, none below its foot.
GRAIN_SKIN = (0.15, 0.5)
# The band above the grain: the luma's blurs at sigma 1 and NEXT_SIGMA. It is lent to a
# user's face enlarged (the template face's size over the user's) partly from the first
# value, fully from the second: a face at about its own size has that band of its own, and
# the template's, lent there, is the template's likeness (its wrinkles and folds).
NEXT_SIGMA = 3.0
NEXT_ENLARGED = (1.2, 1.8)
# A block within this of the template's fine detail (as a share of its rms) is left as it is.
BLOCK_SLACK = 0.05
_TINY = 1e-3  # levels squared: an empty block's energy, never a division by zero


@dataclass(frozen=True)
class TemplateDetail:
    """The template face's luma and its fine detail, as match_detail reads them (of the face
    region as it is in the template: see the module's docstring)."""

    luma: FloatArray  # float32
    smooth: FloatArray  # the luma blurred at sigma 1: luma - smooth is the grain
    coarse: FloatArray  # the luma blurred at NEXT_SIGMA: smooth - coarse is the band above
    power: FloatArray  # _sampled_power of the luma
    next_power: FloatArray  # the band above's, squared, on every other row and column

    @classmethod
    def of(cls, template_rgb: UInt8Array) -> "TemplateDetail":
        luma = cv2.cvtColor(template_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        smooth = cast(FloatArray, cv2.GaussianBlur(luma, (0, 0), 1.0))
        coarse = cast(FloatArray, cv2.GaussianBlur(luma, (0, 0), NEXT_SIGMA))
        return cls(luma, smooth, coarse, _sampled_power(luma), _band_power(smooth, coarse))


@dataclass(frozen=True)
class Grain:
    """The template's finest band of luma, and the band above it, lent to the fused skin (see
    _even_fine_detail)."""

    amount: FloatArray  # (h, w) how much of the finest band each pixel takes, the skin weight in it
    limit: FloatArray  # (h, w) the band clipped to this: grain and pores come over, edges do not
    next_amount: FloatArray | None = None  # the same for the band above (None: none of it)
    next_limit: FloatArray | None = None

    def add(self, face: FloatArray, template: TemplateDetail, rows: slice) -> None:
        """Into `rows` of `face` (in place)."""
        grain = _clipped(cast(FloatArray, cv2.subtract(template.luma[rows], template.smooth[rows])), self.limit[rows])
        cv2.multiply(grain, self.amount[rows], dst=grain)
        if self.next_amount is not None and self.next_limit is not None:
            above = cast(FloatArray, cv2.subtract(template.smooth[rows], template.coarse[rows]))
            _clipped(above, self.next_limit[rows])
            cv2.multiply(above, self.next_amount[rows], dst=above)
            grain += above
        face[rows] += _channels(grain)


def _clipped(band: FloatArray, limit: FloatArray) -> FloatArray:
    """`band` clipped to ±`limit`, in place."""
    np.minimum(band, limit, out=band)
    np.maximum(band, -limit, out=band)
    return band


def match_detail(
    face: FloatArray, template: TemplateDetail, skin: FloatArray, features: FloatArray, enlarged: float = 1.0
) -> tuple[FloatArray, Grain | None]:
    """The fused face with the template's sharpness, and the grain it takes from the
    template (added with the blend, by rows): blurred where the user's skin and features
    are sharper than the template's (a soft-focus or low-resolution template stays soft),
    then its skin's finest detail evened out, block by block, to the template's
    (_even_fine_detail). Sharpness is compared on luma."""
    skin_weight, feature_weight = _SampledWeight(skin), _SampledWeight(features)
    t_power = template.power
    f_luma = _luma(face)
    f_power = _sampled_power(f_luma)
    for region in (skin_weight, feature_weight):
        sigma = _blur_to_match(f_luma, f_power, region.mean_of(t_power), region)
        if sigma > 0:
            blurred = cv2.GaussianBlur(face, (0, 0), sigma)
            face = cast(FloatArray, cv2.blendLinear(blurred, face, region.full, 1 - region.full))
            f_luma = _luma(face)
            f_power = _sampled_power(f_luma)
    return face, _even_fine_detail(face, f_luma, f_power, template, skin, enlarged)


def _even_fine_detail(
    face: FloatArray,
    f_luma: FloatArray,
    f_power: FloatArray,
    template: TemplateDetail,
    skin: FloatArray,
    enlarged: float,
) -> Grain | None:
    """In each of FINE_BLOCKS blocks across the face, the skin's finest band of luma (luma
    minus its blur at sigma 1) scaled down, in place, where it has more energy than the
    template's there; the template's own band to be added where it has less (the Grain
    returned), so that the sum has the template's. A global match leaves a face with one
    sharp and one stretched, smooth side (a turned head) unlike the template on both; a
    block follows the template's own falloff, a cheek in shadow or out of focus. Energies
    are compared on the sampled powers (_sampled_power). A user's face `enlarged` (the
    template face's size over the user's) lacks the band above the finest too: that of the
    template is lent as well, in full from NEXT_ENLARGED's top."""
    h, w = skin.shape
    grid = (FINE_BLOCKS, max(1, round(FINE_BLOCKS * h / w)))
    # The skin weight grown from the canvas overshoots a little below 0 along its edges: a
    # block of such skin alone would have a negative share, and its energies no root.
    sampled_skin = np.maximum(skin[::2, ::2], 0)

    def block_mean(plane: FloatArray) -> FloatArray:
        return cast(FloatArray, cv2.resize(plane, grid, interpolation=cv2.INTER_AREA))

    def full(blocks: FloatArray) -> FloatArray:
        return cast(FloatArray, cv2.resize(blocks.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))

    skin_share = np.maximum(block_mean(sampled_skin), _TINY)

    def energy(power: FloatArray) -> FloatArray:
        return cast(FloatArray, np.maximum(block_mean(power * sampled_skin) / skin_share, _TINY))

    f_energy, t_energy = energy(f_power), energy(template.power)
    kept = np.minimum(np.sqrt(t_energy / f_energy), 1.0)
    if float(kept.min()) < 1 - BLOCK_SLACK:
        fine = cv2.subtract(f_luma, cv2.GaussianBlur(f_luma, (0, 0), 1.0))
        face += _channels((full(kept) - 1) * fine * skin)
    lent = np.sqrt(np.clip(1 - kept * kept * f_energy / t_energy, 0, 1))
    next_share = float(smoothstep(np.float32(enlarged), *NEXT_ENLARGED))
    next_lent = np.zeros_like(lent)
    if next_share > 0:
        smooth, coarse = (cast(FloatArray, cv2.GaussianBlur(f_luma, (0, 0), sigma)) for sigma in (1.0, NEXT_SIGMA))
        t_next = energy(template.next_power)
        next_lent = next_share * np.sqrt(np.clip(1 - energy(_band_power(smooth, coarse)) / t_next, 0, 1))
    if max(float(lent.max()), float(next_lent.max())) < BLOCK_SLACK:
        return None
    ramp = _ramp(skin, *GRAIN_SKIN)
    next_amount = next_limit = None
    if float(next_lent.max()) >= BLOCK_SLACK:
        next_amount, next_limit = full(next_lent) * ramp, full(GRAIN_LIMIT * np.sqrt(t_next))
    return Grain(full(lent) * ramp, full(GRAIN_LIMIT * np.sqrt(t_energy)), next_amount, next_limit)


def _ramp(weight: FloatArray, foot: float, top: float) -> FloatArray:
    """0 below `foot`, 1 above `top`, linear between (cv2 passes: a full-size plane)."""
    ramp = cast(FloatArray, cv2.addWeighted(weight, 1 / (top - foot), weight, 0.0, -foot / (top - foot)))
    cv2.threshold(ramp, 1.0, 1.0, cv2.THRESH_TRUNC, dst=ramp)
    cv2.threshold(ramp, 0.0, 0.0, cv2.THRESH_TOZERO, dst=ramp)
    return ramp


def _channels(plane: FloatArray) -> FloatArray:
    """(h, w) -> (h, w, 3): cv2.merge, cheaper than numpy's broadcasting here."""
    return cast(FloatArray, cv2.merge((plane, plane, plane)))


def _luma(rgb: FloatArray) -> FloatArray:
    return cast(FloatArray, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def _band_power(smooth: FloatArray, coarse: FloatArray) -> FloatArray:
    """The band between two blurs of luma, squared, on every other row and column."""
    band = cast(FloatArray, smooth[::2, ::2] - coarse[::2, ::2])
    return band * band


def _sampled_power(luma: FloatArray) -> FloatArray:
    """Squared fine detail (luma minus its blur at sigma 1) on every other row and column:
    a statistic of hundreds of thousands of pixels needs a quarter. pyrDown's 5-tap
    binomial is such a blur (its variance is 1) worked out at those pixels only, far
    cheaper than blurring them all."""
    detail = luma[::2, ::2] - cast(FloatArray, cv2.pyrDown(luma))
    return detail * detail


class _SampledWeight:
    """A full-resolution weight plane and its every other row and column (as _sampled_power)."""

    def __init__(self, full: FloatArray) -> None:
        self.full = full
        self.sampled = np.ascontiguousarray(full[::2, ::2]).ravel()
        self.total = max(float(self.sampled.sum()), 1.0)

    def mean_of(self, power: FloatArray) -> float:
        """The weighted mean of a _sampled_power."""
        return float(np.dot(power.ravel(), self.sampled) / self.total)


def _blur_to_match(luma: FloatArray, power: FloatArray, t_energy: float, region: _SampledWeight) -> float:
    """The blur (sigma, 0 for none) that brings the face's fine detail (`power` of `luma`)
    in `region` down to the template's energy there."""
    if region.mean_of(power) <= 1.3 * t_energy:
        return 0.0
    for sigma in (0.6, 0.9, 1.3, 1.8, 2.5, 3.5):
        if region.mean_of(_sampled_power(cast(FloatArray, cv2.GaussianBlur(luma, (0, 0), sigma)))) <= 1.15 * t_energy:
            break
    return sigma

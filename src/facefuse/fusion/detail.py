"""The template's sharpness and grain on the fused face: a soft-focus or low-resolution
template stays soft, a grainy one lends the user's skin its grain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array


@dataclass(frozen=True)
class TemplateDetail:
    """The template face's luma and its fine detail, as match_detail reads them."""

    luma: FloatArray  # float32
    smooth: FloatArray  # the luma blurred at sigma 1: luma - smooth is the grain
    power: FloatArray  # _sampled_power of the luma

    @classmethod
    def of(cls, template_rgb: UInt8Array) -> "TemplateDetail":
        luma = cv2.cvtColor(template_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cls(luma, cast(FloatArray, cv2.GaussianBlur(luma, (0, 0), 1.0)), _sampled_power(luma))


@dataclass(frozen=True)
class Grain:
    """How much of the template's grain the fused skin takes (see match_detail)."""

    amount: float
    limit: float  # clipped to the noise level: grain and pores come over, the template's edges do not

    def add(self, face: FloatArray, template_luma: FloatArray, template_smooth: FloatArray, skin: FloatArray) -> None:
        """Into `face` (in place), over any band of rows given of all four."""
        grain = cast(FloatArray, cv2.subtract(template_luma, template_smooth))
        cv2.min(grain, self.limit, dst=grain)  # type: ignore[call-overload]  # as np.clip, cheaper; cv2 takes a number for an array
        cv2.max(grain, -self.limit, dst=grain)  # type: ignore[call-overload]  # likewise
        cv2.multiply(grain, skin, dst=grain, scale=self.amount)
        face += _channels(grain)


def match_detail(
    face: FloatArray, template: TemplateDetail, skin: FloatArray, features: FloatArray
) -> tuple[FloatArray, Grain | None]:
    """Blur the user's skin and features where they are sharper than the template's, and
    tell how much grain the template has beyond it (to add where the skin is), so the
    fused face has the template's sharpness and noise (a soft-focus or low-resolution
    template stays soft).

    Sharpness is compared on luma; the template's grain is its luma's fine detail."""
    skin_weight, feature_weight = _SampledWeight(skin), _SampledWeight(features)
    t_power = template.power
    f_luma = _luma(face)
    f_power = _sampled_power(f_luma)
    t_energy = skin_weight.mean_of(t_power)
    for region, t_region_energy in ((skin_weight, t_energy), (feature_weight, feature_weight.mean_of(t_power))):
        sigma = _blur_to_match(f_luma, f_power, t_region_energy, region)
        if sigma > 0:
            blurred = cv2.GaussianBlur(face, (0, 0), sigma)
            face = cast(FloatArray, cv2.blendLinear(blurred, face, region.full, 1 - region.full))
            f_luma = _luma(face)
            f_power = _sampled_power(f_luma)
    f_energy = skin_weight.mean_of(f_power)
    if f_energy < 0.8 * t_energy:
        return face, Grain(float(np.sqrt(1 - f_energy / t_energy)), 2.0 * float(np.sqrt(t_energy)))
    return face, None


def _channels(plane: FloatArray) -> FloatArray:
    """(h, w) -> (h, w, 3): cv2.merge, cheaper than numpy's broadcasting here."""
    return cast(FloatArray, cv2.merge((plane, plane, plane)))


def _luma(rgb: FloatArray) -> FloatArray:
    return cast(FloatArray, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


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

"""Light, colour and texture: the template's shading and skin tone under the user's features."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facefuse.fusion import mesh
from facefuse.fusion.masks import feather


@dataclass(frozen=True)
class SkinModel:
    """Robust centre and spread of skin colour in (log R/G, log B/G, log luma)."""

    centre: np.ndarray  # (3,)
    spread: np.ndarray  # (3,)


def skin_features(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    logs = np.log(rgb + 8.0)
    luma = np.log(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) + 8.0)
    return np.stack([logs[..., 0] - logs[..., 1], logs[..., 2] - logs[..., 1], luma], axis=-1)


def fit_skin_model(rgb: np.ndarray, points: np.ndarray, radius: float) -> SkinModel:
    """Skin colour sampled on both upper cheeks (rarely covered by hair, beard or glasses)."""
    spots = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for index in mesh.RIGHT_CHEEK + mesh.LEFT_CHEEK:
        x, y = points[index]
        cv2.circle(spots, (int(round(x)), int(round(y))), max(1, int(round(radius))), 1, -1)
    picked = np.take(rgb.reshape(-1, 3), np.flatnonzero(spots), axis=0)  # 5x faster than rgb[spots > 0]
    if len(picked) < 8:
        picked = rgb.reshape(-1, 3)
    samples = skin_features(picked[:, None, :])[:, 0, :]
    centre = np.median(samples, axis=0)
    mad = np.median(np.abs(samples - centre), axis=0) * 1.4826
    spread = np.maximum(mad, np.array([0.04, 0.04, 0.18], dtype=np.float32))
    return SkinModel(centre.astype(np.float32), spread.astype(np.float32))


def skin_likelihood(rgb: np.ndarray, model: SkinModel) -> np.ndarray:
    """float32 (h, w) ~1 where the colour is the model's skin, ~0 far from it. Light
    and shadow change luminance much more than chroma, so luminance counts for little."""
    features = skin_features(rgb)
    scale = model.spread * np.array([3.0, 3.0, 8.0], np.float32)
    total = np.zeros(rgb.shape[:2], np.float32)
    for channel in range(3):
        z = (features[..., channel] - model.centre[channel]) * (1 / scale[channel])
        total += z * z
    return np.exp(-0.5 * total).astype(np.float32)


def masked_log_lowpass(image: np.ndarray, weight: np.ndarray, sigmas: tuple[float, ...]) -> list[np.ndarray]:
    """Weighted Gaussian low-passes of log(image) (normalised convolution) at each of
    `sigmas`, as log values.

    The log keeps a few highlights or dark pores from pulling the local skin level.
    """
    weighted_logs = np.log(image.astype(np.float32) + 4.0) * weight[..., None]
    lows = []
    for sigma in sigmas:
        total = np.maximum(feather(weight, sigma), 1e-4)
        lows.append(feather(weighted_logs, sigma) / total[..., None])
    return lows


def shading_gain(template_log_low: np.ndarray, user_log_low: np.ndarray) -> np.ndarray:
    """Per-channel gain that turns the user's local skin colour into the template's."""
    return np.exp(np.clip(template_log_low - user_log_low, -2.5, 2.5)).astype(np.float32)


def is_grayscale(rgb: np.ndarray) -> bool:
    """True when the channels are (nearly) equal everywhere: a black-and-white photo."""
    sample = rgb[:: max(1, rgb.shape[0] // 128), :: max(1, rgb.shape[1] // 128)].astype(np.int16)
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(np.percentile(spread, 99)) <= 6


def to_gray(rgb: np.ndarray) -> np.ndarray:
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.cvtColor(luma, cv2.COLOR_GRAY2RGB)

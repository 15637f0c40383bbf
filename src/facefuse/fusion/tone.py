"""Light, colour and texture: the template's shading and skin tone under the user's features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, ImageArray, UInt8Array
from facefuse.fusion import mesh
from facefuse.fusion.masks import feather, smoothstep


@dataclass(frozen=True)
class SkinModel:
    """Robust centre and spread of skin colour in (log R/G, log B/G, log luma)."""

    centre: FloatArray  # (3,)
    spread: FloatArray  # (3,)


def skin_features(rgb: ImageArray) -> FloatArray:
    rgb = rgb.astype(np.float32)
    logs = np.log(rgb + 8.0)
    luma = np.log(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) + 8.0)
    return np.stack([logs[..., 0] - logs[..., 1], logs[..., 2] - logs[..., 1], luma], axis=-1)


def fit_skin_model(rgb: ImageArray, points: FloatArray, radius: float) -> SkinModel:
    """Skin colour sampled on both upper cheeks (rarely covered by hair, beard or glasses)."""
    spots = np.zeros(rgb.shape[:2], dtype=np.uint8)
    for index in mesh.RIGHT_CHEEK + mesh.LEFT_CHEEK:
        x, y = points[index]
        cv2.circle(spots, (int(round(x)), int(round(y))), max(1, int(round(radius))), 1, -1)  # type: ignore[call-overload]  # cv2 takes a number for a colour
    picked = np.take(rgb.reshape(-1, 3), np.flatnonzero(spots), axis=0)  # cheaper than rgb[spots > 0]
    if len(picked) < 8:
        picked = rgb.reshape(-1, 3)
    samples = skin_features(picked[:, None, :])[:, 0, :]
    centre = np.median(samples, axis=0)
    mad = np.median(np.abs(samples - centre), axis=0) * 1.4826
    spread = np.maximum(mad, np.array([0.04, 0.04, 0.18], dtype=np.float32))
    return SkinModel(centre.astype(np.float32), spread.astype(np.float32))


def skin_likelihood(rgb: FloatArray, model: SkinModel) -> FloatArray:
    """float32 (h, w) ~1 where the colour is the model's skin, ~0 far from it. Light
    and shadow change luminance much more than chroma, so luminance counts for little."""
    features = skin_features(rgb)
    scale = model.spread * np.array([3.0, 3.0, 8.0], np.float32)
    total = np.zeros(rgb.shape[:2], np.float32)
    for channel in range(3):
        z = (features[..., channel] - model.centre[channel]) * (1 / scale[channel])
        total += z * z
    return cast(FloatArray, np.exp(-0.5 * total).astype(np.float32))


def masked_log_lowpass(image: FloatArray, weight: FloatArray, sigmas: tuple[float, ...]) -> list[FloatArray]:
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


def shading_gain(template_log_low: FloatArray, user_log_low: FloatArray) -> FloatArray:
    """Per-channel gain that turns the user's local skin colour into the template's."""
    return np.exp(np.clip(template_log_low - user_log_low, -2.5, 2.5)).astype(np.float32)


def is_grayscale(rgb: UInt8Array) -> bool:
    """True when the channels are (nearly) equal everywhere: a black-and-white photo."""
    sample = rgb[:: max(1, rgb.shape[0] // 128), :: max(1, rgb.shape[1] // 128)].astype(np.int16)
    spread = np.abs(sample[..., 0] - sample[..., 1]) + np.abs(sample[..., 1] - sample[..., 2])
    return float(np.percentile(spread, 99)) <= 6


def is_colourless(rgb: UInt8Array) -> bool:
    """True for a black-and-white photo, toned or not (sepia, a cyanotype): its chroma
    follows its luma alone, one hue throughout (a colour photo's lips, eyes and skin differ
    in colour at the same brightness)."""
    sample = np.ascontiguousarray(rgb[:: max(1, rgb.shape[0] // 64), :: max(1, rgb.shape[1] // 64)])
    ycc = cv2.cvtColor(sample, cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.int16)
    # Chroma as a function of luma, whatever its curve (a tint grows with brightness and
    # clips in highlights): its spread among pixels of about the same luma.
    order = np.argsort(ycc[:, 0], kind="stable")
    ycc = ycc[order]
    starts = np.searchsorted(ycc[:, 0], np.arange(0, 256, COLOURLESS_LUMA_STEP))
    counts = np.diff(np.append(starts, len(ycc)))
    bin_of = np.repeat(np.arange(len(starts)), counts)  # each pixel's bin, in luma order
    used = counts >= COLOURLESS_LEAST_PIXELS
    kept = used[bin_of]
    if not kept.any():
        return False
    # Each bin's median chroma (np.median's: the mean of the two middle values), all bins
    # at once: the pixels sorted by bin, then by chroma.
    lower = np.where(used, starts + (counts - 1) // 2, 0)
    upper = np.where(used, starts + counts // 2, 0)
    spreads = []
    for channel in (1, 2):
        chroma = ycc[:, channel]
        by_value = chroma[np.lexsort((chroma, bin_of))]
        median = ((by_value[lower] + by_value[upper]) / 2).astype(np.int16)
        spreads.append(np.abs(chroma - median[bin_of])[kept])
    spread = np.concatenate(spreads)
    k = int(0.99 * (spread.size - 1))
    return int(np.partition(spread, k)[k]) <= COLOURLESS_SPREAD


COLOURLESS_LUMA_STEP = 4  # luma levels of a bin of "about the same luma"
COLOURLESS_LEAST_PIXELS = 8  # a bin with fewer sampled pixels says nothing
# Of YCrCb chroma (0..255) around its curve of luma, at the 99th percentile: a black-and-white
# photo's stays within this, a colour photo's lips alone go far past it.
COLOURLESS_SPREAD = 6.0


def with_chroma_of(face: FloatArray, source: UInt8Array, sigma: float) -> FloatArray:
    """The float32 RGB `face` with its chroma (YCrCb) taken from `source` (uint8 RGB, the
    same region), low-passed at `sigma` so that only its colours come, not its texture."""
    ycc = cv2.cvtColor(face, cv2.COLOR_RGB2YCrCb)
    chroma = np.ascontiguousarray(cv2.cvtColor(source.astype(np.float32), cv2.COLOR_RGB2YCrCb)[..., 1:])
    ycc[..., 1:] = cv2.GaussianBlur(chroma, (0, 0), max(sigma, 0.5))
    return cast(FloatArray, cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB))


def to_gray(rgb: FloatArray) -> FloatArray:
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cast(FloatArray, cv2.cvtColor(luma, cv2.COLOR_GRAY2RGB))


def lit(face: ImageArray, gain: FloatArray, shine_floor: FloatArray, out: FloatArray | None = None) -> FloatArray:
    """The user's pixels (uint8 or float32) in the template's light, as a new float32 image:
    `gain` times `face`, except what is brighter than the user's skin level where the gain
    brightens. That part is light the skin reflects (shine, a glint), not skin colour: it
    is added as it is rather than multiplied, or a dark, shiny face taken to a light
    template gets blown-out, colour-shifted patches (a blue gain of ~3x there).

    With level the skin level and boost = max(gain - 1, 0), that is gain * face -
    max(face - level, 0) * boost, which equals min(gain * face, face + level * boost):
    `shine_floor` = level * boost, worked out on the small canvas (three passes here).
    `out`: where to write it instead (float32, the face's shape)."""
    out = cast(FloatArray, cv2.multiply(face, gain, dst=out, dtype=cv2.CV_32F))
    cv2.min(out, cv2.add(face, shine_floor, dtype=cv2.CV_32F), dst=out)
    return out


def skin_lift(gain: FloatArray, skin: FloatArray) -> float:
    """How many times brighter the template's light makes the user's skin: the median gain
    over the plain skin (the mean of the channels')."""
    medians = _channel_medians(skin, gain)
    return 1.0 if medians is None else float(medians[0].mean())


def skin_chroma(rgb: FloatArray, skin: FloatArray, sigma: float) -> FloatArray:
    """(h, w, 2) the skin's local chroma (Cr, Cb) around each pixel: a low-pass weighted by
    `skin`, so that lips, brows and hair do not bleed into it."""
    chroma = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:])
    total = np.maximum(feather(skin, sigma), 1e-4)
    return cast(FloatArray, feather(chroma * skin[..., None], sigma) / total[..., None])


def even_chroma(face: FloatArray, local: FloatArray, weight: FloatArray) -> FloatArray:
    """The lit face (float32 RGB) with each pixel's chroma moved toward `local` by `weight`;
    luma, which carries the features and their relief, is left as it is.

    A dark face lifted into a light template gets gains of 2-3x, most in blue: its chroma
    noise and the colourless shine of dark skin came out as grey-blue patches on the light
    face. Evening the skin's chroma out removes them and keeps every shape."""
    ycc = cast(FloatArray, cv2.cvtColor(face, cv2.COLOR_RGB2YCrCb))
    chroma = ycc[..., 1:]
    chroma += weight[..., None] * (local - chroma)
    return cast(FloatArray, cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB))


def dark_keeps_its_hue(gain: FloatArray, luma: FloatArray, level: FloatArray, amount: float | FloatArray) -> FloatArray:
    """`gain` with its colour (each channel's gain over the luma gain) faded out, by
    `amount` (a number or a map), where `luma` is far darker than the skin `level` around
    it: brows and hair take the light but keep their own hue.

    The gain that lifts a dark face into a light template is ~2x in red and ~3x in blue: it
    turns the skin's colour into the template's, but near-black brows multiplied by it came
    out blue."""
    level_luma = cv2.cvtColor(np.maximum(level, 0), cv2.COLOR_RGB2GRAY)
    skin_like = smoothstep((luma + 4.0) / (level_luma + 4.0), *_DARK_HUE_LUMA)
    keep = 1.0 - amount * (1.0 - skin_like)
    luma_gain = cv2.cvtColor(gain, cv2.COLOR_RGB2GRAY)[..., None]
    return cast(FloatArray, (luma_gain * (gain / np.maximum(luma_gain, 1e-3)) ** keep[..., None]).astype(np.float32))


# Of the local skin level's luma (darkest pixel of each canvas block): hair below the first,
# skin, its shadows included, above the second.
_DARK_HUE_LUMA = (0.5, 0.9)


def median_tone_gain(face: FloatArray, template: FloatArray, weight: FloatArray) -> FloatArray:
    """One gain per channel so the median colour of what the user brings (eyes, brows and
    lips included) is the template's there.

    The local shading gain follows the template's light but leaves a residual cast where
    the user's features and skin texture differ (freckles, stubble, make-up); this
    settles the face's overall tone on the template's. The medians are taken in CIELAB,
    the space a colour difference is seen in (per-channel RGB medians of a face are not
    the colour of its median: its shadows and highlights pull each channel differently),
    and turned back into RGB for the gain. Measured on the small canvas."""
    medians = _channel_medians(weight, _to_lab(template), _to_lab(face))
    if medians is None:
        return np.ones(3, np.float32)
    t_median, f_median = (_lab_to_rgb(m) for m in medians)
    gain = (t_median + 1.0) / (f_median + 1.0)
    return np.clip(gain, 0.5, 2.0).astype(np.float32)


def _to_lab(rgb: FloatArray) -> FloatArray:
    """float32 RGB 0..255 (h, w, 3) -> CIELAB (L 0..100)."""
    return cast(FloatArray, cv2.cvtColor(np.clip(rgb, 0, 255) * np.float32(1 / 255), cv2.COLOR_RGB2Lab))


def _lab_to_rgb(lab: FloatArray) -> FloatArray:
    """One CIELAB colour -> float RGB 0..255 (out-of-gamut channels clipped)."""
    rgb = cast(FloatArray, cv2.cvtColor(lab.astype(np.float32).reshape(1, 1, 3), cv2.COLOR_Lab2RGB)).reshape(3)
    return cast(FloatArray, np.clip(rgb, 0, 1) * 255)  # numpy's stubs type clip's result dtype Any, then * 255 int


def _channel_medians(weight: FloatArray, *images: FloatArray) -> list[FloatArray] | None:
    """Each (h, w, 3) image's per-channel median where `weight` is over 0.5; None when
    that is under 64 pixels."""
    region = np.flatnonzero(weight > 0.5)
    if len(region) < 64:
        return None
    region = region[:: max(1, len(region) // 4096)]  # a median of ~4,000 samples is as good as of all
    return [np.median(np.take(image.reshape(-1, 3), region, axis=0), axis=0) for image in images]


def soft_highlights(image: FloatArray, knee: float = 235.0) -> FloatArray:
    """Compress values above the knee smoothly toward 255 (in place when contiguous): a gain
    that brightens a dark face must not burn its highlights (nose tip, forehead) to flat
    white. Only the values above the knee are touched (a few percent of them)."""
    image = np.ascontiguousarray(image)
    values = image.reshape(-1)
    hot = np.flatnonzero(values > knee)
    over = values[hot] - knee
    values[hot] -= over * over / ((255.0 - knee) + over)
    return image

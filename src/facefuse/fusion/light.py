"""The template's light and tone on the user's skin: a gain worked out on the canvas (the
template's local skin level over the user's, settled on the template's median colour),
applied at full resolution with shine added rather than multiplied, and, for a face lifted
much brighter, its skin's chroma evened out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import directional, masks, tone
from facefuse.fusion.canvas import Canvas
from facefuse.fusion.placement import CanvasWarps
from facefuse.fusion.skin import TemplateSkin, UserSkin

# A user's skin lifted this many times (the median gain, start and full) has its chroma
# evened out over this much of the face (tone.even_chroma): dark faces into light templates.
EVEN_CHROMA_LIFT = (1.3, 2.0)
EVEN_CHROMA_SIGMA = 0.03


@dataclass(frozen=True)
class Light:
    """The canvas-size light for the user's face (see tone.lit)."""

    gain: FloatArray  # (h, w, 3)
    shine_floor: FloatArray  # (h, w, 3): the user's skin level times the brightening part of the gain
    evened: FloatArray | None  # how far the skin's chroma is evened out (0..1), None: nowhere


def relight(
    canvas: Canvas,
    warps: CanvasWarps,
    user: UserSkin,
    template: TemplateSkin,
    template_levels: list[FloatArray],
    template_small: FloatArray,
    alpha: FloatArray,
) -> Light:
    """The gain taking the user's skin to the template's light: the user's sideways light
    taken off on the face's shape (directional.gain), then the template's local levels
    (Canvas.shading), then its median colour over what the user brings (`alpha`)."""
    user_weight = template.plain * user.likelihood
    turn = directional.gain(user.small, user_weight, warps.user_normals, warps.template_normals)
    turned = user.small if turn is None else user.small * turn
    gain, u_level = canvas.shading(template_levels, canvas.skin_levels(turned, user_weight))
    if turn is not None:
        gain *= turn
        u_level /= turn  # the skin level in the user's photo's own light
    u_lit = tone.soft_highlights(tone.lit(user.small, gain, u_level * np.maximum(gain - 1, 0)))
    gain *= tone.median_tone_gain(u_lit, template_small, alpha)
    evening = float(masks.smoothstep(np.float32(tone.skin_lift(gain, template.shared)), *EVEN_CHROMA_LIFT))
    evened = canvas.bare_face() * evening if evening > 0 else None
    if evened is not None:
        # The bare skin's chroma is evened out; brows, lashes and hair keep their own hue.
        gain = tone.dark_keeps_its_hue(gain, user.dark, u_level, evening - evened)
    return Light(gain, u_level * np.maximum(gain - 1, 0), evened)


def light_rows(out: FloatArray, u_face: UInt8Array, gain: FloatArray, shine_floor: FloatArray, rows: slice) -> None:
    """tone.lit and tone.soft_highlights of `rows` of the full-size face into `out`
    (float32), with the canvas's gain and shine floor grown to full size."""
    tone.soft_highlights(tone.lit(u_face[rows], gain[rows], shine_floor[rows], out=out[rows]))


def even_chroma(canvas: Canvas, face: FloatArray, user: UserSkin, template: TemplateSkin, light: Light) -> FloatArray:
    """The lit full-size face with its skin's chroma evened out as `light.evened` says
    (`face` itself when nowhere)."""
    if light.evened is None:
        return face
    local = tone.skin_chroma(
        tone.soft_highlights(tone.lit(user.small, light.gain, light.shine_floor)),
        template.shared,
        EVEN_CHROMA_SIGMA * canvas.size,
    )
    return tone.even_chroma(face, canvas.grow(local), canvas.grow(light.evened))

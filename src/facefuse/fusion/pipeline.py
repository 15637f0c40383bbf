"""The fusion of one user face into one prepared template face, as named steps in order.

 1. crop_user      the user's face region, at about the template face's scale
 2. place          the user aligned to the template face; the fused landmarks (the
                   template's, moved toward the user's proportions); the warp box and,
                   inside it, the face region that can take the user's pixels
 3. warps          both faces' piecewise-affine warps onto the fused landmarks
 4. warp_faces     the template's patch warped into the result's warp box; the user's face
                   warped onto the face region
 5. read_skin      what of each warped face is skin, on the region's canvas (a shrunk copy
                   where masks and light are worked out)
 6. fill_covers    what covers the user's face (strands, frames, hands: hands.over_user) and
                   what its photo shows edge-on, filled from the face itself (its mirror
                   image, else the skin around; under a hand, else the template's skin in
                   the user's tone); the filled face is read again
 7. alpha          how much of the user shows at each pixel; under a hand, what the mirror
                   image cannot fill shows the template's own face
 8. relight        the user's sideways light taken off on its 3-D shape; the template's light
                   and tone on the user's skin (a gain on the canvas)
 9. light_face     that gain and shine at full resolution; a lifted skin's chroma evened;
                   a black-and-white user's face given the template's colours
10. match_texture  the template's finest texture on what was inpainted; its sharpness, and
                   its grain block by block across the face (detail.match_detail), read on
                   the template's face region unwarped
11. blend          over the template by alpha, the template's open mouth left as it is
12. keep_glasses   the template's glasses frames in front, unwarped
13. keep_hands     the template's hands (and what they hold) in front, unwarped

Concurrency plan (facefuse.parallel): while a core is spare, the helper thread takes, in
this order, the upper half of the user's warp, the template's warp with its skin levels,
the template's fine detail, the full-size weights, the grown shine floor, and the first
half of the rows of the light and of the blend; the calling thread does the rest. Each
piece is a pure function of its arguments or writes only its own rows, so the bytes are
the same whether a piece ran there or in turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from facefuse import parallel
from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import alpha, blend, detail, hands, in_front, light, occluders, placement, skin, tone, warp
from facefuse.fusion.canvas import Canvas
from facefuse.fusion.placement import Placement, Strength, Warps
from facefuse.fusion.template import PreparedTemplate
from facefuse.vision.faces import Face

# A black-and-white user into a colour template takes the template's colours (its skin's,
# its lips') over its own light and shade, low-passed over this much of the face.
COLOURLESS_CHROMA_SIGMA = 0.01


def fill_face(
    out: UInt8Array,
    prepared: PreparedTemplate,
    user_rgb: UInt8Array,
    user_face: Face,
    strength: Strength,
    find_held: in_front.HeldMask | None = None,
) -> None:
    """Fuse the user's face into `out`, the template's crop (a view of the result, holding
    the template's pixels): only what the warp reaches is written. `find_held` answers what
    hands cover of the user's face (asked only when the face reads so: hands.over_user)."""
    user = placement.crop_user(user_rgb, user_face, prepared.face_size)
    place = placement.place(prepared, user, strength)
    maps = placement.warps(prepared, place)
    canvas = place.canvas(prepared.face_size)
    on_canvas = maps.region.on(canvas)
    template_skin = skin.template_skin(canvas, on_canvas, prepared)

    wx0, wy0, wx1, wy1 = place.warp_box
    u_face = np.empty((*canvas.out_shape, 3), np.uint8)
    remap_user = partial(_warp_user_rows, u_face, user.image, maps.user_map_of_face(place))
    upper = parallel.start(remap_user, slice(0, len(u_face) // 2))
    template = parallel.start(
        _warp_template, prepared.patch, maps, place, out[wy0:wy1, wx0:wx1], canvas, template_skin.shared
    )
    fx0, fy0, fx1, fy1 = place.face_box
    template_detail = parallel.start(detail.TemplateDetail.of, prepared.patch[fy0:fy1, fx0:fx1])
    remap_user(slice(len(u_face) // 2, len(u_face)))
    upper.result()

    user_as_seen = user_skin = skin.user_skin(canvas, on_canvas, u_face)
    covers = occluders.find_covers(canvas, u_face, user_as_seen.dark)
    held = hands.over_user(canvas, on_canvas, user, user_as_seen.small, covers, find_held)
    plan = hands.plan_fill(canvas, on_canvas, covers, held, user_as_seen)
    shows = None if plan is None or held is None else hands.template_shows(canvas, plan, held)
    if plan is not None:
        crossings = None if covers is None else covers.crossings
        u_face = hands.fill(canvas, maps.region, u_face, plan, crossings, held, shows, partial(_face_of, template))
        user_skin = skin.user_skin(canvas, on_canvas, u_face, plan.filled)
    trust = alpha.feature_trust(prepared.landmarks, user.landmarks)
    canvas_alpha = alpha.on_canvas(
        canvas, on_canvas, prepared, template_skin, user_skin, user_as_seen, trust, strength.fuse
    )
    if shows is not None:
        canvas_alpha *= 1 - shows
    region_target = place.target - place.face_origin
    weights = parallel.start(
        alpha.full_size_weights,
        canvas,
        template_skin.shared,
        canvas_alpha,
        region_target,
        prepared.landmarks,
        prepared.face_size,
    )
    t = template.result()
    lighting = light.relight(canvas, on_canvas, user_skin, template_skin, t.levels, t.small, canvas_alpha)

    face = _light_face(canvas, u_face, lighting)
    face = light.even_chroma(canvas, face, user_skin, template_skin, lighting)
    if user.grayscale and not prepared.grayscale:
        face = tone.with_chroma_of(face, t.face, COLOURLESS_CHROMA_SIGMA * prepared.face_size)
    full = weights.result()
    t_detail = template_detail.result()
    if plan is not None:
        occluders.texture_inpainted(face, canvas, hands.own_part(plan, held), t_detail)
    enlarged = prepared.face_size / max(user_face.size, 1.0)
    face, grain = detail.match_detail(face, t_detail, full.skin, full.features, enlarged)
    fused = np.empty(t.face.shape, np.uint8)
    parallel.in_halves(
        partial(blend.blend_rows, fused, face, t.face, t_detail, full.alpha, grain, prepared.grayscale),
        len(fused),
    )
    out[fy0:fy1, fx0:fx1] = fused
    if prepared.frames is not None:
        blend.keep_template_glasses(out, prepared.frames, place.warp_box)
    if prepared.hands is not None:
        in_front.put_back(out, prepared.hands, place.warp_box)


def _warp_user_rows(
    out: UInt8Array, user_image: UInt8Array, user_map: tuple[FloatArray, FloatArray], rows: slice
) -> None:
    warp.remap(user_image, (user_map[0][rows], user_map[1][rows]), out=out[rows])


@dataclass(frozen=True)
class _WarpedTemplate:
    """The template's face region warped onto the fused landmarks, and on the canvas: its
    block averages and its skin levels (Canvas.skin_levels)."""

    face: UInt8Array
    small: FloatArray  # float32
    levels: list[FloatArray]


def _warp_template(
    patch: UInt8Array, maps: Warps, place: Placement, out: UInt8Array, canvas: Canvas, shared_skin: FloatArray
) -> _WarpedTemplate:
    """The template patch warped over the warp box into `out` (a view of the result), and its
    face region on `canvas` with its levels there over `shared_skin`."""
    warped = warp.remap(patch, warp.upsample(maps.raster, maps.template_grid))
    out[:] = warped
    face = warped[place.face_in_warp_box]
    small = canvas.shrink(face)
    return _WarpedTemplate(face, small, canvas.skin_levels(small, shared_skin))


def _face_of(template: parallel.Pending[_WarpedTemplate]) -> tuple[UInt8Array, FloatArray]:
    """The template's warped face region and its block averages on the canvas."""
    warped = template.result()
    return warped.face, warped.small


def _light_face(canvas: Canvas, u_face: UInt8Array, lighting: light.Light) -> FloatArray:
    """The user's face in the template's light at full size (float32), by halves."""
    pending_shine = parallel.start(canvas.grow, lighting.shine_floor)
    gain = canvas.grow(lighting.gain)
    shine_floor = pending_shine.result()
    face = np.empty(u_face.shape, np.float32)
    parallel.in_halves(partial(light.light_rows, face, u_face, gain, shine_floor), len(face))
    return face

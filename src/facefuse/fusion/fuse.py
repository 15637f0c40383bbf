"""Put a user's face into a template face: the public entry points of the fusion package.

The user's face is warped onto the template's landmarks (moved a little toward the user's
proportions), lit and toned by the template's low-frequency skin shading, given the
template's grain, and blended in with a soft mask that keeps the template's outline, hair,
mouth interior and anything else on the template face that is not skin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np

from facefuse import parallel
from facefuse.fusion import beard, detail, masks, mesh, tone, warp
from facefuse.fusion.canvas import TEMPLATE_FRAMES_EYE_CLEARANCE, USER_FRAMES_EYE_CLEARANCE, Canvas, canvas_factor
from facefuse.fusion.geometry import (Similarity, eye_openness_mismatch, fit_similarity, openness, target_landmarks,
                                      user_lips_trust)
from facefuse.vision.faces import Face

CROP_MARGIN = 0.25  # of the face box side, each way: the region fusion may change
RING_REACH = 1.15  # outer ring of the template warp, as a multiple of the oval's radius
GRID_CELLS = 64  # warp grid cells across the face
# A user's skin lifted this many times (the median gain, start and full) has its chroma
# evened out over this much of the face (tone.even_chroma): dark faces into light templates.
_EVEN_CHROMA_LIFT = (1.3, 2.0)
_EVEN_CHROMA_SIGMA = 0.03


@dataclass(frozen=True)
class FuseOptions:
    """fuse_degree: how much of the user's skin and features replace the template's (0..100).
    shape_degree: how far the face geometry moves toward the user's proportions (0..100)."""

    fuse_degree: int = 100
    shape_degree: int = 40


@dataclass(frozen=True)
class PreparedTemplate:
    """What fusion needs from one template face; compute once per template face."""

    image: np.ndarray  # the whole template, never written to
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 of the region fusion may change
    patch: np.ndarray  # that region, uint8
    landmarks: np.ndarray  # (478, 3) in patch pixels
    face_size: float
    grayscale: bool
    glasses: bool  # wears glasses: their frames are put back unwarped (_keep_glasses)
    canvas_skin: np.ndarray  # its skin likelihood on the patch's canvas, warped onto each fusion's
    canvas_in_front: np.ndarray  # what of it stays in front for its hair (0..1), likewise
    ring: np.ndarray  # the outer ring of the warp (_ring), patch pixels
    warp_vertices: np.ndarray  # the template's vertices of the warp mesh (_vertices)
    beard: float = 0.0  # how surely it has a beard (0..1): kept from the jaw inward (beard.beard_kept)

    @property
    def nbytes(self) -> int:
        """The arrays it keeps of its own (the whole template `image` is shared, not counted)."""
        return sum(a.nbytes for a in (self.patch, self.landmarks, self.canvas_skin, self.canvas_in_front, self.ring,
                                      self.warp_vertices))

    def changed_box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the image fusion may change (what the template warp reaches)."""
        x0, y0, x1, y1 = masks.bounds(self.ring, self.patch.shape[:2], 1.0)
        return self.crop[0] + x0, self.crop[1] + y0, self.crop[0] + x1, self.crop[1] + y1


def prepare_template(template_rgb: np.ndarray, template_face: Face) -> PreparedTemplate:
    x, y, side, _ = template_face.box
    x0, y0, x1, y1 = _box_around(template_rgb.shape, x, y, side, CROP_MARGIN)
    patch = np.ascontiguousarray(template_rgb[y0:y1, x0:x1])
    landmarks = template_face.landmarks.astype(np.float32).copy()
    landmarks[:, :2] -= (x0, y0)
    canvas = Canvas(patch.shape[:2], float(side), landmarks[:, :2])
    small, dark = canvas.shrink(patch), canvas.shrink_dark(patch)
    glasses = bool(canvas.glasses_frames(dark, TEMPLATE_FRAMES_EYE_CLEARANCE).any())
    model = canvas.skin_model(small)
    beard_amount = beard.beard_amount(patch, landmarks[:, :2])
    ring = _ring(landmarks[:, :2])
    return PreparedTemplate(image=template_rgb, crop=(x0, y0, x1, y1), patch=patch,
                            landmarks=landmarks, face_size=float(side),
                            grayscale=tone.is_grayscale(patch), glasses=glasses,
                            canvas_skin=tone.skin_likelihood(small, model),
                            canvas_in_front=_template_hair_in_front(canvas, dark, small, model, beard_amount),
                            ring=ring, warp_vertices=_vertices(landmarks[:, :2], ring), beard=beard_amount)


def fuse_face(template_rgb: np.ndarray, template_face: Face, user_rgb: np.ndarray,
              user_face: Face, options: FuseOptions) -> np.ndarray:
    """A new RGB image of the template's size with the user's face in template_face."""
    return fuse_prepared(prepare_template(template_rgb, template_face), user_rgb, user_face, options)


def fuse_prepared(prepared: PreparedTemplate, user_rgb: np.ndarray, user_face: Face,
                  options: FuseOptions) -> np.ndarray:
    result = prepared.image.copy()
    if options.fuse_degree > 0:
        x0, y0, x1, y1 = prepared.crop
        fuse_into(result[y0:y1, x0:x1], prepared, user_rgb, user_face, options)
    return result


def geometry_weights(fuse: float, shape: float) -> tuple[float, float]:
    """How far inner features and the face outline move toward the user's proportions.

    The outline moves with the square of shape_degree so that the default keeps the
    template's jaw (its pose) while the full setting takes the user's face shape."""
    return fuse, fuse * shape * shape


def fuse_into(out: np.ndarray, prepared: PreparedTemplate, user_rgb: np.ndarray, user_face: Face,
              options: FuseOptions) -> None:
    """Fuse the user's face into `out`, the template's crop (a view of the result, holding
    the template's pixels): only what the warp reaches is written."""
    fuse = float(np.clip(options.fuse_degree, 0, 100)) / 100
    shape = float(np.clip(options.shape_degree, 0, 100)) / 100
    user_image, user_lms = _user_patch(user_rgb, user_face, prepared.face_size)
    t_lms = prepared.landmarks
    align = fit_similarity(user_lms[: mesh.MESH_POINTS], t_lms[: mesh.MESH_POINTS])
    target = target_landmarks(t_lms[:, :2], align.apply(user_lms)[:, :2],
                              *geometry_weights(fuse, shape))
    ring = prepared.ring
    patch_shape = prepared.patch.shape[:2]
    # Only the warp ring can change; only the face oval can take the user's pixels.
    wx0, wy0, wx1, wy1 = masks.bounds(ring, patch_shape, 1.0)
    fx0, fy0, fx1, fy1 = masks.bounds(target[list(mesh.FACE_OVAL)], patch_shape, 2.0)
    fx0, fy0, fx1, fy1 = max(fx0, wx0), max(fy0, wy0), min(fx1, wx1), min(fy1, wy1)
    factor = canvas_factor(prepared.face_size)
    fx0, fx1 = _whole_blocks(fx0, fx1, wx0, wx1, factor)
    fy0, fy1 = _whole_blocks(fy0, fy1, wy0, wy1, factor)
    t_grid, u_map, warps = _warp_maps(prepared, user_lms, target, ring, align, (wx0, wy0, wx1, wy1),
                                      user_image.shape, (fx0 - wx0, fy0 - wy0))
    inner = (slice(fy0 - wy0, fy1 - wy0), slice(fx0 - wx0, fx1 - wx0))
    origin = np.array([fx0, fy0], np.float32)
    canvas = Canvas((fy1 - fy0, fx1 - fx0), prepared.face_size, target - origin)
    warp_template = partial(_warp_template, prepared.patch, warps.raster, t_grid, out[wy0:wy1, wx0:wx1], inner, canvas)
    face = _fuse_face_region(warp_template, user_image, (u_map[0][inner], u_map[1][inner]), canvas,
                             warps, target - origin, t_lms, user_lms, fuse, prepared)
    if prepared.glasses:
        _keep_glasses(face, prepared.patch[fy0:fy1, fx0:fx1], t_lms[:, :2] - origin, prepared.face_size)
    out[fy0:fy1, fx0:fx1] = face


@dataclass(frozen=True)
class _WarpedTemplate:
    """The template's face region warped onto the target: as it is, its skin levels on the
    canvas (Canvas.skin_levels), and its detail (for detail.match_detail)."""

    face: np.ndarray  # uint8
    small: np.ndarray  # float32, on the canvas
    levels: list[np.ndarray]
    pending_detail: parallel.Pending[detail.TemplateDetail]

    @property
    def detail(self) -> detail.TemplateDetail:
        return self.pending_detail.result()


def _warp_template(patch: np.ndarray, raster: warp.TriangleRaster, grid: tuple[np.ndarray, np.ndarray],
                   out: np.ndarray, inner: tuple[slice, slice], canvas: Canvas, skin: np.ndarray) -> _WarpedTemplate:
    """The template patch warped over the warp box into `out` (a view of the result), its
    face region (`inner`) on `canvas` and its levels there over `skin`; the region's detail
    is started meanwhile."""
    warped = warp.remap(patch, warp.upsample(raster, grid))
    out[:] = warped
    face = warped[inner]
    pending = parallel.start(detail.TemplateDetail.of, face)
    small = canvas.shrink(face)
    return _WarpedTemplate(face, small, canvas.skin_levels(small, skin), pending)


def _whole_blocks(start: int, stop: int, low: int, high: int, factor: int) -> tuple[int, int]:
    """start..stop widened within low..high to a whole number of canvas blocks, so the canvas
    shrinks it without padding a full-resolution copy first (unchanged if it cannot)."""
    extra = -(stop - start) % factor
    grow_stop = min(extra, high - stop)
    grow_start = min(extra - grow_stop, start - low)
    if grow_stop + grow_start < extra:
        return start, stop
    return start - grow_start, stop + grow_stop


@dataclass(frozen=True)
class _RegionWarps:
    """The warps of the face region on a coarse grid (warp.grid_map), to be sampled at a
    canvas's blocks: into the user's photo, into the template's patch, and how squarely
    the user's photo shows each bit (seen edge-on: low)."""

    user_shape: tuple[int, ...]
    raster: warp.TriangleRaster  # over the warp box
    grids: np.ndarray  # (gh, gw, 5): user patch x, y; seen 0..1; template patch x, y
    origin: tuple[int, int]  # x, y of the face region in the warp box

    def on(self, canvas: Canvas) -> _CanvasWarps:
        blocks = warp.sample_blocks(self.raster, self.grids, self.origin, canvas.factor, canvas.shape)
        return _CanvasWarps(self.user_shape, canvas.factor, blocks)


@dataclass(frozen=True)
class _CanvasWarps:
    """_RegionWarps at a canvas's blocks: where the user's photo really shows the face
    (inside the photo, not edge-on), and the template's own canvas quantities (worked out
    once per template) moved onto this canvas."""

    user_shape: tuple[int, ...]
    factor: int
    blocks: np.ndarray  # (h, w, 5) as _RegionWarps.grids

    def user_coverage(self) -> np.ndarray:
        """float32 0..1 at the canvas size (of the face region)."""
        inside = np.zeros(self.user_shape[:2], np.uint8)
        inside[1:-1, 1:-1] = 255
        to_user = (self.blocks[..., 0], self.blocks[..., 1])
        valid = warp.remap(inside, to_user, cv2.BORDER_CONSTANT).astype(np.float32) * (1 / 255)
        return valid * self.blocks[..., 2]

    def template_plane(self, plane: np.ndarray) -> np.ndarray:
        """`plane` on the template patch's canvas (same factor), as on this canvas: each
        block takes the value at the template point its centre comes from."""
        to_patch_canvas = (self.blocks[..., 3:] + 0.5) * (1 / self.factor) - 0.5
        return warp.remap(plane, (to_patch_canvas[..., 0], to_patch_canvas[..., 1]))


def _fuse_face_region(warp_template: Callable[[np.ndarray], _WarpedTemplate], user_image: np.ndarray,
                      u_map: tuple[np.ndarray, np.ndarray], canvas: Canvas, warps: _RegionWarps,
                      target: np.ndarray, t_lms: np.ndarray, u_lms: np.ndarray, fuse: float,
                      prepared: PreparedTemplate) -> np.ndarray:
    """Both faces warped onto `target` (pixels of this region: the user's by `u_map`, the
    template's by `warp_template`, given its skin on the canvas): light, blend.

    Masks, light and tone are worked out on a small canvas; at full resolution only the
    user's pixels are scaled by the grown gain, given the template's sharpness and grain,
    and blended: a handful of passes over the region."""
    on_canvas = warps.on(canvas)
    t_skin = on_canvas.template_plane(prepared.canvas_skin)
    skin_area = canvas.skin_area()
    skin = skin_area * t_skin
    # The helper's first piece is half the user's face (needed first), then the template's.
    u_face = np.empty((*u_map[0].shape, 3), np.uint8)

    def remap_user(rows: slice) -> None:
        warp.remap(user_image, (u_map[0][rows], u_map[1][rows]), out=u_face[rows])

    upper = parallel.start(remap_user, slice(0, len(u_face) // 2))
    template = parallel.start(warp_template, skin)
    remap_user(slice(len(u_face) // 2, len(u_face)))
    upper.result()
    u_small = canvas.shrink(u_face)
    u_valid = masks.feather(on_canvas.user_coverage(), 0.015 * canvas.size)
    u_model = canvas.skin_model(u_small)
    u_skin = tone.skin_likelihood(u_small, u_model) * u_valid
    u_dark = canvas.shrink_dark(u_face)
    u_hair = canvas.forehead_hair(u_dark, u_model)
    alpha = fuse * canvas.alpha(t_skin, u_skin * (1 - u_hair), _feature_trust(t_lms, u_lms))
    alpha *= 1 - on_canvas.template_plane(prepared.canvas_in_front)
    if prepared.glasses:
        # The template's glasses go on top (_keep_glasses); the user's own would show as a
        # second, bent pair of frames beside them.
        alpha *= 1 - canvas.glasses_frames(u_dark, USER_FRAMES_EYE_CLEARANCE)
    weights = parallel.start(_full_size_weights, canvas, skin, alpha, target, t_lms, prepared.face_size)
    u_levels = canvas.skin_levels(u_small, skin_area * u_skin)
    t = template.result()
    gain, u_level = canvas.shading(t.levels, u_levels)
    u_lit = tone.soft_highlights(tone.lit(u_small, gain, u_level * np.maximum(gain - 1, 0)))
    gain *= tone.median_tone_gain(u_lit, t.small, alpha)
    evening = float(masks.smoothstep(np.float32(tone.skin_lift(gain, skin)), *_EVEN_CHROMA_LIFT))
    evened = canvas.bare_face() * evening if evening > 0 else None
    if evened is not None:
        # The bare skin's chroma is evened out below; brows, lashes and hair keep their own hue.
        gain = tone.dark_keeps_its_hue(gain, u_dark, u_level, evening - evened)
    shine_floor = u_level * np.maximum(gain - 1, 0)

    face = _lit_face(canvas, u_face, gain, shine_floor)
    if evened is not None:
        local = tone.skin_chroma(tone.soft_highlights(tone.lit(u_small, gain, shine_floor)), skin,
                                 _EVEN_CHROMA_SIGMA * canvas.size)
        face = tone.even_chroma(face, canvas.grow(local), canvas.grow(evened))
    skin_full, features_full, alpha = weights.result()
    face, grain = detail.match_detail(face, t.detail, skin_full, features_full)
    return _blended(face, t, alpha, grain, skin_full, prepared.grayscale)


def _lit_face(canvas: Canvas, u_face: np.ndarray, gain: np.ndarray, shine_floor: np.ndarray) -> np.ndarray:
    """tone.lit and tone.soft_highlights at full size (the canvas's gain and shine grown), by
    halves (float32)."""
    pending_shine = parallel.start(canvas.grow, shine_floor)
    gain = canvas.grow(gain)
    shine_floor = pending_shine.result()
    face = np.empty(u_face.shape, np.float32)

    def light(rows: slice) -> None:
        tone.soft_highlights(tone.lit(u_face[rows], gain[rows], shine_floor[rows], out=face[rows]))

    parallel.in_halves(light, len(face))
    return face


def _blended(face: np.ndarray, template: _WarpedTemplate, alpha: np.ndarray, grain: detail.Grain | None,
             skin: np.ndarray, grayscale: bool) -> np.ndarray:
    """The fused face, given the template's grain over its skin, over the template's face by
    alpha, as uint8, by halves."""
    fused = np.empty(template.face.shape, np.uint8)

    def blend(rows: slice) -> None:
        if grain is not None:
            grain.add(face[rows], template.detail.luma[rows], template.detail.smooth[rows], skin[rows])
        weight = alpha[rows]
        mixed = cv2.blendLinear(face[rows], template.face[rows].astype(np.float32), weight, 1 - weight)
        if grayscale:
            mixed = tone.to_gray(mixed)
        cv2.threshold(mixed, 0, 0, cv2.THRESH_TOZERO, dst=mixed)  # negatives to 0, as np.maximum, 6x faster
        cv2.convertScaleAbs(mixed, dst=fused[rows])  # rounds and saturates at 255

    parallel.in_halves(blend, len(fused))
    return fused


def _full_size_weights(canvas: Canvas, skin: np.ndarray, alpha: np.ndarray, target: np.ndarray,
                       t_lms: np.ndarray, face_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The skin, the features and alpha (with the template's open mouth cut out) at full size."""
    alpha = canvas.grow(alpha)
    _cut_mouth_hole(alpha, target, t_lms, face_size)
    return canvas.grow(skin), canvas.grow(canvas.features), alpha


def _template_hair_in_front(canvas: Canvas, t_dark: np.ndarray, t_small: np.ndarray,
                            t_model: tone.SkinModel, beard_amount: float) -> np.ndarray:
    """How much of the template stays in front for its hair (canvas size, 0..1): its fringe,
    over the brows too (the user's features showing through it came out as ghosted brows
    under a see-through fringe), and its beard from the jaw inward."""
    kept = canvas.template_fringe(t_dark, t_model)
    if beard_amount > 0:
        kept = 1 - (1 - kept) * (1 - beard.beard_kept(canvas, t_small, beard_amount))
    return kept


def _keep_glasses(face: np.ndarray, t_still: np.ndarray, t_points: np.ndarray,
                  face_size: float) -> None:
    """The frames of the template's glasses, as they are in the template, in front of the
    fused face (in place). Frames are rigid: the warp that moves the template's features
    to the user's proportions would bend them, so they are taken from the unwarped
    template (`t_still`, the same region; `t_points` its landmarks there)."""
    canvas = Canvas(face.shape[:2], face_size, t_points)
    frames = canvas.glasses_frames(canvas.shrink_dark(t_still), TEMPLATE_FRAMES_EYE_CLEARANCE)
    if not frames.any():
        return
    weight = canvas.grow(frames)
    face[:] = cv2.blendLinear(t_still, face, weight, 1 - weight)


def _cut_mouth_hole(alpha: np.ndarray, target: np.ndarray, t_lms: np.ndarray,
                    face_size: float) -> None:
    """Take the template's open mouth (teeth, tongue) out of `alpha` (full resolution, in
    place): it stays the template's. A closed mouth has no hole: there the user's lips,
    lip line included, come in whole."""
    open_amount = float(masks.smoothstep(np.float32(openness(t_lms, mesh.MOUTH_OPENING)), 0.02, 0.06))
    if open_amount <= 0:
        return
    lips = target[list(mesh.LIPS_INNER)]
    x0, y0, x1, y1 = masks.bounds(lips, alpha.shape, 0.02 * face_size + 2)
    hole = masks.polygon_mask((y1 - y0, x1 - x0), lips - np.array([x0, y0], np.float32))
    alpha[y0:y1, x0:x1] *= 1 - open_amount * masks.feather(hole, 0.003 * face_size)


def _feature_trust(t_lms: np.ndarray, u_lms: np.ndarray) -> dict[str, float]:
    """How far the user's lips and eyes can be stretched onto the template's: a user's
    open mouth squeezed onto closed lips smears teeth over them, and open eyes squeezed
    shut (or shut eyes pulled open) smear lashes; there the template's own feature stays.

    The eyes go as a pair, on their mismatch taken together: one eye the user's and the other
    the template's read as two people, and a turned head or a smile's squint makes the two
    eyes' openness differ more than the faces do."""
    trust = {"lips": user_lips_trust(t_lms, u_lms)}
    mismatch = np.mean([eye_openness_mismatch(t_lms, u_lms, span)
                        for span in (mesh.RIGHT_EYE_OPENING, mesh.LEFT_EYE_OPENING)])
    trust["right_eye"] = trust["left_eye"] = 1 - float(masks.smoothstep(np.float32(mismatch), 0.5, 0.9))
    return {k: float(v) for k, v in trust.items()}


def _warp_maps(prepared: PreparedTemplate, user_lms: np.ndarray, target: np.ndarray,
               ring: np.ndarray, align: Similarity, box: tuple[int, int, int, int],
               user_shape: tuple[int, ...], face_origin: tuple[int, int]
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], _RegionWarps]:
    """The template's warp on the coarse grid (warp.upsample makes its remap() map) and
    the user's remap() map over `box` of the patch, both onto the target landmarks, and the
    face region's warps (at `face_origin` in the box) on their coarse grid, for its canvas
    (_RegionWarps)."""
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0], dtype=np.float32)
    triangles, kinds = mesh.all_triangles()
    g_vertices = _vertices(target, ring) - origin
    order = warp.painter_order(g_vertices, prepared.landmarks[:, 2], triangles, kinds, mesh.SKIN)
    raster = warp.rasterize(g_vertices, triangles, (y1 - y0, x1 - x0),
                            max(1.0, prepared.face_size / GRID_CELLS), order)
    shift = np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float32)
    to_user = _inverse_in_plane(align)
    u_ring = ring @ to_user[:, :2].T + to_user[:, 2]
    u_fallback = to_user.copy()
    u_fallback[:, 2] += to_user[:, :2] @ origin
    u_vertices = _vertices(user_lms[:, :2], u_ring)
    t_grid, u_grid = warp.grid_maps(raster, (prepared.warp_vertices, u_vertices), triangles,
                                    (np.eye(2, 3, dtype=np.float32) + shift, u_fallback))
    # A bit of face the user's photo shows edge-on (turned away, past the cheek) holds
    # ear, hair or background, not skin: there the template stays.
    squeeze = (warp.signed_areas(u_vertices, triangles) * align.scale ** 2
               / np.maximum(warp.signed_areas(g_vertices, triangles), 1e-3))
    seen = np.where(kinds == mesh.SKIN, masks.smoothstep(squeeze, 0.2, 0.5), 1.0)
    grids = cv2.merge((*u_grid, warp.grid_values(raster, seen, outside=1.0), *t_grid))
    warps = _RegionWarps(user_shape, raster, grids, face_origin)
    return t_grid, warp.upsample(raster, u_grid), warps


def _user_patch(user_rgb: np.ndarray, user_face: Face,
                template_face_size: float) -> tuple[np.ndarray, np.ndarray]:
    """The user's face region, area-shrunk when much larger than the template face so the
    warp never skips pixels; with its landmarks in the patch's pixels."""
    x, y, side, _ = user_face.box
    x0, y0, x1, y1 = _box_around(user_rgb.shape, x, y, side, 0.3)
    patch = np.ascontiguousarray(user_rgb[y0:y1, x0:x1])
    lms = user_face.landmarks.astype(np.float32).copy()
    lms[:, :2] -= (x0, y0)
    factor = template_face_size / max(side, 1.0)
    if factor < 0.8:
        size = (max(1, round(patch.shape[1] * factor)), max(1, round(patch.shape[0] * factor)))
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
        lms[:, :2] = (lms[:, :2] + 0.5) * np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)]) - 0.5
        lms[:, 2] *= factor
    return patch, lms


def _box_around(shape: tuple[int, ...], x: float, y: float, side: float,
                margin: float) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    pad = margin * side
    return (max(0, int(np.floor(x - pad))), max(0, int(np.floor(y - pad))),
            min(w, int(np.ceil(x + side + pad))), min(h, int(np.ceil(y + side + pad))))


def _ring(points: np.ndarray) -> np.ndarray:
    centre = masks.face_centre(points)
    return centre + RING_REACH * (points[list(mesh.FACE_OVAL)] - centre)


def _vertices(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """The 478 landmarks plus the centres of the mouth and eye holes and the outer ring."""
    mouth = points[list(mesh.LIPS_INNER)].mean(axis=0)
    right = _eye_centre(points, mesh.RIGHT_EYE, mesh.RIGHT_IRIS[0])
    left = _eye_centre(points, mesh.LEFT_EYE, mesh.LEFT_IRIS[0])
    return np.concatenate([points[:478], [mouth, right, left], ring]).astype(np.float32)


def _eye_centre(points: np.ndarray, loop: tuple[int, ...], iris: int) -> np.ndarray:
    """The iris centre when it lies inside the eye opening, else the opening's centroid."""
    contour = points[list(loop)].astype(np.float32)
    inside = cv2.pointPolygonTest(contour.reshape(-1, 1, 2), tuple(map(float, points[iris])), True)
    return points[iris] if inside > 0.5 else contour.mean(axis=0)


def _inverse_in_plane(align: Similarity) -> np.ndarray:
    """(2, 3) the in-plane part of the user->template similarity, inverted."""
    forward = np.concatenate([align.scale * align.rotation[:2, :2], align.shift[:2, None]], axis=1)
    return np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2].astype(np.float32)

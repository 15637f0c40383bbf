"""Put a user's face into a template face: the public entry points of the fusion package.

The user's face is warped onto the template's landmarks (moved a little toward the user's
proportions), lit and toned by the template's low-frequency skin shading, given the
template's grain, and blended in with a soft mask that keeps the template's outline, hair,
mouth interior and anything else on the template face that is not skin.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facefuse.fusion import masks, mesh, tone, warp
from facefuse.fusion.geometry import (Similarity, eye_openness_mismatch, fit_similarity, openness, target_landmarks,
                                      user_lips_trust)
from facefuse.vision.faces import Face

CROP_MARGIN = 0.25  # of the face box side, each way: the region fusion may change
RING_REACH = 1.15  # outer ring of the template warp, as a multiple of the oval's radius
GRID_CELLS = 64  # warp grid cells across the face
WORK_FACE = 96.0  # least face size in pixels on the canvas where masks and light are computed
FACE_SHRINK = (0.10, 0.04, 0.04)  # mask edge inside the oval: forehead, cheeks, chin
FACE_FEATHER = 0.015  # mask edge softness, of the face size
SHADING_SIGMA = (0.04, 0.22)  # scale of the template light carried over: rim, centre
SHADING_CENTRE = 0.75  # the centre's extent, of the oval's


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

    def changed_box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the image fusion may change (what the template warp reaches)."""
        x0, y0, x1, y1 = _bounds(_ring(self.landmarks[:, :2]), self.patch.shape[:2], 1.0)
        return self.crop[0] + x0, self.crop[1] + y0, self.crop[0] + x1, self.crop[1] + y1


def prepare_template(template_rgb: np.ndarray, template_face: Face) -> PreparedTemplate:
    x, y, side, _ = template_face.box
    x0, y0, x1, y1 = _box_around(template_rgb.shape, x, y, side, CROP_MARGIN)
    patch = np.ascontiguousarray(template_rgb[y0:y1, x0:x1])
    landmarks = template_face.landmarks.astype(np.float32).copy()
    landmarks[:, :2] -= (x0, y0)
    canvas = _Canvas(patch.shape[:2], float(side), landmarks[:, :2])
    glasses = bool(canvas.glasses_frames(canvas.shrink_dark(patch), _TEMPLATE_FRAMES_EYE_CLEARANCE).any())
    return PreparedTemplate(image=template_rgb, crop=(x0, y0, x1, y1), patch=patch,
                            landmarks=landmarks, face_size=float(side),
                            grayscale=tone.is_grayscale(patch), glasses=glasses)


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
    ring = _ring(t_lms[:, :2])
    patch_shape = prepared.patch.shape[:2]
    # Only the warp ring can change; only the face oval can take the user's pixels.
    wx0, wy0, wx1, wy1 = _bounds(ring, patch_shape, 1.0)
    fx0, fy0, fx1, fy1 = _bounds(target[list(mesh.FACE_OVAL)], patch_shape, 2.0)
    fx0, fy0, fx1, fy1 = max(fx0, wx0), max(fy0, wy0), min(fx1, wx1), min(fy1, wy1)
    factor = _canvas_factor(prepared.face_size)
    fx0, fx1 = _whole_blocks(fx0, fx1, wx0, wx1, factor)
    fy0, fy1 = _whole_blocks(fy0, fy1, wy0, wy1, factor)
    t_map, u_map, coverage = _warp_maps(prepared, user_lms, target, ring, align, (wx0, wy0, wx1, wy1),
                                        user_image.shape, (fx0 - wx0, fy0 - wy0))
    t_warped = warp.remap(prepared.patch, t_map)
    out[wy0:wy1, wx0:wx1] = t_warped
    inner = (slice(fy0 - wy0, fy1 - wy0), slice(fx0 - wx0, fx1 - wx0))
    u_map = (u_map[0][inner], u_map[1][inner])
    origin = np.array([fx0, fy0], np.float32)
    face = _fuse_face_region(
        t_warped[inner], warp.remap(user_image, u_map), coverage,
        target - origin, t_lms, user_lms, fuse, prepared)
    if prepared.glasses:
        _keep_glasses(face, prepared.patch[fy0:fy1, fx0:fx1], t_lms[:, :2] - origin, prepared.face_size)
    out[fy0:fy1, fx0:fx1] = face


def _canvas_factor(face_size: float) -> int:
    """How many times smaller the canvas of masks and light is than the output (see _Canvas)."""
    return max(1, int(face_size // WORK_FACE))


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
class _UserCoverage:
    """Where the user's photo really shows the face: inside the photo, not edge-on."""

    user_shape: tuple[int, ...]
    raster: warp.TriangleRaster  # over the warp box
    user_grid: tuple[np.ndarray, np.ndarray]  # grid cells -> user patch pixels
    seen_grid: np.ndarray  # grid cells: 0..1, low where the user's face is seen edge-on
    origin: tuple[int, int]  # x, y of the face region in the warp box

    def on(self, canvas: _Canvas) -> np.ndarray:
        """float32 0..1 at the canvas size (of the face region)."""
        inside = np.zeros(self.user_shape[:2], np.uint8)
        inside[1:-1, 1:-1] = 255

        def at_canvas(grid: np.ndarray) -> np.ndarray:
            return warp.sample_blocks(self.raster, grid, self.origin, canvas.factor, canvas.shape)

        small_map = (at_canvas(self.user_grid[0]), at_canvas(self.user_grid[1]))
        valid = warp.remap(inside, small_map, cv2.BORDER_CONSTANT).astype(np.float32) * (1 / 255)
        return valid * at_canvas(self.seen_grid)


def _fuse_face_region(t_face: np.ndarray, u_face: np.ndarray, coverage: _UserCoverage,
                      target: np.ndarray, t_lms: np.ndarray, u_lms: np.ndarray, fuse: float,
                      prepared: PreparedTemplate) -> np.ndarray:
    """Both faces already warped onto `target` (pixels of this region): light, blend.

    Masks, light and tone are worked out on a small canvas; at full resolution only the
    user's pixels are scaled by the grown gain, given the template's sharpness and grain,
    and blended: a handful of passes over the region."""
    region_shape = t_face.shape[:2]
    canvas = _Canvas(region_shape, prepared.face_size, target)
    t_small, u_small = canvas.shrink(t_face), canvas.shrink(u_face)
    t_skin = tone.skin_likelihood(t_small, canvas.skin_model(t_small))
    u_valid = masks.feather(coverage.on(canvas), 0.015 * canvas.size)
    u_model = canvas.skin_model(u_small)
    u_skin = tone.skin_likelihood(u_small, u_model) * u_valid
    skin_area = canvas.skin_area()
    gain, u_level = canvas.shading(t_small, u_small, skin_area * t_skin, skin_area * u_skin)
    u_dark = canvas.shrink_dark(u_face)
    u_hair = canvas.forehead_hair(u_dark, u_model)
    alpha = fuse * canvas.alpha(t_skin, u_skin * (1 - u_hair), _feature_trust(t_lms, u_lms))
    if prepared.glasses:
        # The template's glasses go on top (_keep_glasses); the user's own would show as a
        # second, bent pair of frames beside them.
        alpha *= 1 - canvas.glasses_frames(u_dark, _USER_FRAMES_EYE_CLEARANCE)
    tone_gain = _median_tone_gain(_soft_highlights(_lit(u_small, gain, u_level * np.maximum(gain - 1, 0))),
                                  t_small, alpha)
    gain *= tone_gain
    shine_floor = u_level * np.maximum(gain - 1, 0)

    face = _lit(u_face, canvas.grow(gain), canvas.grow(shine_floor))
    face = _soft_highlights(face)
    skin = skin_area * t_skin
    evening = float(_smoothstep(np.float32(_skin_lift(gain, skin)), *_EVEN_CHROMA_LIFT))
    if evening > 0:
        local = _skin_chroma(_soft_highlights(_lit(u_small, gain, shine_floor)), skin,
                             _EVEN_CHROMA_SIGMA * canvas.size)
        face = _even_chroma(face, canvas.grow(local), canvas.grow(canvas.bare_face() * evening))
    t_float = t_face.astype(np.float32)
    t_luma = cv2.cvtColor(t_face, cv2.COLOR_RGB2GRAY).astype(np.float32)
    face = _match_detail(face, t_luma, canvas.grow(skin), canvas.grow(canvas.features()))
    alpha = canvas.grow(alpha)
    _cut_mouth_hole(alpha, target, t_lms, prepared.face_size)
    face = cv2.blendLinear(face, t_float, alpha, 1 - alpha)
    if prepared.grayscale:
        face = tone.to_gray(face)
    cv2.threshold(face, 0, 0, cv2.THRESH_TOZERO, dst=face)  # negatives to 0, as np.maximum, 6x faster
    return cv2.convertScaleAbs(face)  # rounds and saturates at 255


def _keep_glasses(face: np.ndarray, t_still: np.ndarray, t_points: np.ndarray,
                  face_size: float) -> None:
    """The frames of the template's glasses, as they are in the template, in front of the
    fused face (in place). Frames are rigid: the warp that moves the template's features
    to the user's proportions would bend them, so they are taken from the unwarped
    template (`t_still`, the same region; `t_points` its landmarks there)."""
    canvas = _Canvas(face.shape[:2], face_size, t_points)
    frames = canvas.glasses_frames(canvas.shrink_dark(t_still), _TEMPLATE_FRAMES_EYE_CLEARANCE)
    if not frames.any():
        return
    weight = canvas.grow(frames)
    face[:] = cv2.blendLinear(t_still, face, weight, 1 - weight)


class _Canvas:
    """A copy of the output crop shrunk by a whole factor (face >= WORK_FACE px) for masks
    and light. A whole factor keeps the shrink a plain block average, the cheapest there is;
    the crop is padded (edge pixels repeated) to a multiple of it."""

    def __init__(self, out_shape: tuple[int, int], face_size: float, target: np.ndarray) -> None:
        h, w = out_shape
        self.factor = _canvas_factor(face_size)
        self.out_shape = out_shape
        self.shape = (-(-h // self.factor), -(-w // self.factor))
        self.points = (target + 0.5) / self.factor - 0.5
        self.size = face_size / self.factor

    def shrink(self, image: np.ndarray) -> np.ndarray:
        """float32 copy at the canvas size (uint8 input is shrunk before it is converted)."""
        if self.factor > 1:
            h, w = self.out_shape
            pad_h, pad_w = self.shape[0] * self.factor - h, self.shape[1] * self.factor - w
            if pad_h or pad_w:
                image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            image = cv2.resize(image, self.shape[::-1], interpolation=cv2.INTER_AREA)
        return image.astype(np.float32)

    def shrink_dark(self, rgb: np.ndarray) -> np.ndarray:
        """float32 luma at the canvas size, each block its darkest pixel: thin dark lines
        (frames of glasses) keep their darkness where an average would wash them out."""
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.factor > 1:
            luma = cv2.erode(luma, np.ones((self.factor, self.factor), np.uint8),
                             anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
            luma = luma[:: self.factor, :: self.factor]
            h, w = self.shape
            if luma.shape != (h, w):  # the crop's last partial block
                luma = cv2.copyMakeBorder(luma, 0, h - luma.shape[0], 0, w - luma.shape[1], cv2.BORDER_REPLICATE)
        return luma.astype(np.float32)

    def grow(self, image: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return image
        h, w = self.out_shape
        grown = cv2.resize(image, (self.shape[1] * self.factor, self.shape[0] * self.factor),
                           interpolation=cv2.INTER_LINEAR)
        return grown[:h, :w]

    def skin_model(self, image: np.ndarray) -> tone.SkinModel:
        return tone.fit_skin_model(image, self.points, 0.035 * self.size)

    def features(self) -> np.ndarray:
        return masks.feather(masks.features_mask(self.shape, self.points, 0.015 * self.size),
                             0.01 * self.size)

    def forehead_hair(self, dark: np.ndarray, model: tone.SkinModel) -> np.ndarray:
        """Strands of hair (a fringe) on the forehead: far darker than the skin of the
        cheeks. Dark hair has about the colour of skin, so the skin likelihood lets thin
        strands through; their darkness does not (`dark`: luma shrunk by darkest pixels)."""
        skin_luma = max(float(np.exp(model.centre[2])) - 8.0, 1.0)
        hair = 1 - _smoothstep(dark / skin_luma, *_HAIR_LUMA)
        forehead = masks.polygon_mask(self.shape, self.points[list(_FOREHEAD)])
        brows = masks.grow(masks.polygon_mask(self.shape, masks.loop(self.points, mesh.RIGHT_BROW),
                                              masks.loop(self.points, mesh.LEFT_BROW)), 0.02 * self.size)
        return masks.feather(hair * forehead * (1 - brows), 0.01 * self.size)

    def bare_face(self) -> np.ndarray:
        """The whole oval but the eyes, brows, lips and nostrils."""
        return self._oval_without_features(self.points[list(mesh.FACE_OVAL)], 0.01)

    def skin_area(self) -> np.ndarray:
        """Where both faces show plain skin: inside the oval, away from eyes, brows, lips."""
        return self._oval_without_features(masks.shrunk_oval(self.points, 0.08, 0.04, 0.04), 0.02)

    def _oval_without_features(self, oval: np.ndarray, margin: float) -> np.ndarray:
        """Inside `oval` and over `margin` of the face away from the features."""
        inside = masks.polygon_mask(self.shape, oval)
        return inside * (1 - masks.features_mask(self.shape, self.points, margin * self.size))

    def shading(self, t_small: np.ndarray, u_small: np.ndarray, t_weight: np.ndarray,
                u_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gain taking the user's local skin level to the template's, and that level of
        the user's (per channel). Fine-grained near the rim, where the template's light
        shapes the outline (and the jaw stays the template's); coarse in the centre, where
        the user's own relief and shading keep the identity."""
        sigmas = tuple(sigma * self.size for sigma in SHADING_SIGMA)
        user_logs = tone.masked_log_lowpass(u_small, u_weight, sigmas)
        template_logs = tone.masked_log_lowpass(t_small, t_weight, sigmas)
        gains = [tone.shading_gain(t, u) for t, u in zip(template_logs, user_logs)]
        c = 1 - SHADING_CENTRE
        centre = masks.polygon_mask(self.shape, masks.shrunk_oval(self.points, c, c, c))
        centre = masks.feather(centre, 0.08 * self.size)[..., None]
        user_level = np.exp(user_logs[0] + centre * (user_logs[1] - user_logs[0])) - 4.0
        return gains[0] + centre * (gains[1] - gains[0]), user_level.astype(np.float32)

    def alpha(self, t_skin: np.ndarray, u_skin: np.ndarray, trust: dict[str, float]) -> np.ndarray:
        """How much of the user's face shows at each pixel (before fuse_degree)."""
        pts, size = self.points, self.size
        base = masks.feather(masks.polygon_mask(self.shape, masks.shrunk_oval(pts, *FACE_SHRINK)),
                             FACE_FEATHER * size)
        features = masks.feather(masks.features_mask(self.shape, pts, 0.015 * size), 0.01 * size)
        centre = masks.grow(masks.inner_zone(self.shape, pts), 0.02 * size)
        centre = np.maximum(masks.feather(centre, 0.02 * size), features)
        # Off the centre, whatever is not skin stays in front: the template's hair over the
        # forehead, a beard along the jaw; the user's hair or background does not come in.
        # In the centre the user's features always come (glasses go on top: _keep_glasses).
        t_gate = _smoothstep(masks.feather(t_skin, 0.012 * size), 0.2, 0.55)
        # From eye level down the user's own face edge stays out too: where it meets a
        # bright background, a collar or a beard, the blocks half over it pass as skin and
        # left a light or dark line down the template's cheek and jaw.
        lower = masks.feather(masks.lower_face(self.shape, pts), 0.03 * size)
        u_skin = u_skin + lower * (masks.shrink(u_skin, _USER_EDGE_MARGIN * size) - u_skin)
        u_gate = _smoothstep(masks.feather(u_skin, 0.01 * size), 0.15, 0.5)
        alpha = base * (centre + (1 - centre) * t_gate * u_gate)
        self._keep_template_feature(alpha, mesh.LIPS_OUTER, 0.03, trust["lips"])
        self._keep_template_feature(alpha, mesh.RIGHT_EYE, 0.045, trust["right_eye"])
        self._keep_template_feature(alpha, mesh.LEFT_EYE, 0.045, trust["left_eye"])
        for brow, top in ((mesh.RIGHT_BROW, _RIGHT_BROW_TOP), (mesh.LEFT_BROW, _LEFT_BROW_TOP)):
            trust = min(_smoothstep(self._skin_above(top, t_skin), 0.15, 0.4),
                        _smoothstep(self._skin_above(top, u_skin), 0.35, 0.55))
            self._keep_template_feature(alpha, brow, 0.03, float(trust))
        return alpha

    def _keep_template_feature(self, alpha: np.ndarray, indices: tuple[int, ...], reach: float,
                               trust: float) -> None:
        """Lower alpha (in place) over a feature the user's photo cannot supply well."""
        if trust < 1:
            alpha *= 1 - self._feature_region(indices, reach) * (1 - trust)

    def glasses_frames(self, dark: np.ndarray, eye_clearance: float) -> np.ndarray:
        """Soft mask of the frames of this face's glasses (`dark`: its luma shrunk by the
        darkest pixels, see shrink_dark); zero when it wears none. Nothing within
        `eye_clearance` (of the face size) of an eye counts as frame.

        Glasses are told by their bridge: a dark line across the nose between the eyes,
        where a face has no other. Frames are the dark lines around the eyes that hang
        together with it (a brow counts only where a frame touches it), never the eyes."""
        pts, size = self.points, self.size
        lines = masks.dark_lines(dark, 0.03 * size)
        bridge = masks.polygon_mask(self.shape, pts[list(_NOSE_BRIDGE)])
        # Measured on ../shared/faces: 0.66 and 0.80 with glasses, at most 0.30 without.
        if (lines * bridge).sum() < 0.5 * max(float(bridge.sum()), 1.0):
            return np.zeros(self.shape, np.float32)
        eyes = masks.grow(masks.polygon_mask(self.shape, masks.loop(pts, mesh.RIGHT_EYE),
                                             masks.loop(pts, mesh.LEFT_EYE)), eye_clearance * size)
        frames = lines * masks.glasses_zone(self.shape, pts) * (1 - eyes)
        _, pieces = cv2.connectedComponents((frames > 0.25).astype(np.uint8), connectivity=8)
        on_bridge = np.unique(pieces[(bridge > 0.5) & (pieces > 0)])
        attached = np.isin(pieces, on_bridge).astype(np.float32)
        return frames * masks.feather(masks.grow(attached, 1.5), 0.5)

    def _skin_above(self, top: tuple[int, ...], skin: np.ndarray) -> np.float32:
        """Mean skin likelihood on the band of forehead just above a brow: low when hair
        (a fringe) covers it, and so most likely the brow too."""
        edge = self.points[list(top)]
        up = edge - self.points[[1, 168]].mean(axis=0)
        band = np.concatenate([edge, (edge + 0.25 * up)[::-1]])
        area = masks.polygon_mask(self.shape, band)
        return np.float32((skin * area).sum() / max(area.sum(), 1.0))

    def _feature_region(self, indices: tuple[int, ...], reach: float) -> np.ndarray:
        """The feature's polygon grown and feathered by `reach` of the face size (drawn in
        a window around the feature: the rest of the canvas is 0)."""
        region = np.zeros(self.shape, np.float32)
        polygon = masks.loop(self.points, indices)
        pad = 2.5 * reach * self.size + 2
        x0, y0, x1, y1 = _bounds(polygon, self.shape, pad)
        mask = masks.polygon_mask((y1 - y0, x1 - x0), polygon - np.array([x0, y0], np.float32))
        region[y0:y1, x0:x1] = masks.feather(masks.grow(mask, reach * self.size), reach * self.size * 0.6)
        return region


# Above the brows up to the top of the face oval, image left to right along the brows.
_FOREHEAD = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
             389, 251, 284, 332, 297, 338, 10, 109, 67, 103, 54, 21, 162)
_HAIR_LUMA = (0.35, 0.55)  # of the cheeks' luma: hair below, shadowed skin above
# How far inside its own edge (of the face size) the user's skin counts, from eye level
# down. Measured (60 pairs): pose 0.056 -> 0.054, id the same; over the whole face, pose
# 0.051 but id 91.7 % (the skin around the brows and temples is much of the likeness).
_USER_EDGE_MARGIN = 0.01
# A user's skin lifted this many times (the median gain, start and full) has its chroma
# evened out over this much of the face (_even_chroma): dark faces into light templates.
_EVEN_CHROMA_LIFT = (1.3, 2.0)
_EVEN_CHROMA_SIGMA = 0.03
# How close to an eye (of the face size) frames may be. The template's frames are put back
# over the user's eyes: nearer than this, what touches a rim is the template's lashes and
# eye-corner shadow, which stay the user's (0.01 let them through: deepface img11 into
# img24, d_user 0.60 -> 0.58). The user's own frames give way as close as they come.
_TEMPLATE_FRAMES_EYE_CLEARANCE = 0.04
_USER_FRAMES_EYE_CLEARANCE = 0.01
# Between the inner eye corners, around the top of the nose (below any frown lines).
_NOSE_BRIDGE = (133, 168, 362, 6)
_RIGHT_BROW_TOP = (70, 63, 105, 66, 107)
_LEFT_BROW_TOP = (300, 293, 334, 296, 336)


def _cut_mouth_hole(alpha: np.ndarray, target: np.ndarray, t_lms: np.ndarray,
                    face_size: float) -> None:
    """Take the template's open mouth (teeth, tongue) out of `alpha` (full resolution, in
    place): it stays the template's. A closed mouth has no hole: there the user's lips,
    lip line included, come in whole."""
    open_amount = float(_smoothstep(np.float32(openness(t_lms, mesh.MOUTH_OPENING)), 0.02, 0.06))
    if open_amount <= 0:
        return
    lips = target[list(mesh.LIPS_INNER)]
    x0, y0, x1, y1 = _bounds(lips, alpha.shape, 0.02 * face_size + 2)
    hole = masks.polygon_mask((y1 - y0, x1 - x0), lips - np.array([x0, y0], np.float32))
    alpha[y0:y1, x0:x1] *= 1 - open_amount * masks.feather(hole, 0.003 * face_size)


def _lit(face: np.ndarray, gain: np.ndarray, shine_floor: np.ndarray) -> np.ndarray:
    """The user's pixels (uint8 or float32) in the template's light, as a new float32 image:
    `gain` times `face`, except what is brighter than the user's skin level where the gain
    brightens. That part is light the skin reflects (shine, a glint), not skin colour: it
    is added as it is rather than multiplied, or a dark, shiny face taken to a light
    template gets blown-out, colour-shifted patches (a blue gain of ~3x there).

    With level the skin level and boost = max(gain - 1, 0), that is gain * face -
    max(face - level, 0) * boost, which equals min(gain * face, face + level * boost):
    `shine_floor` = level * boost, worked out on the small canvas (three passes here)."""
    lit = cv2.multiply(face, gain, dtype=cv2.CV_32F)
    cv2.min(lit, cv2.add(face, shine_floor, dtype=cv2.CV_32F), dst=lit)
    return lit


def _skin_lift(gain: np.ndarray, skin: np.ndarray) -> float:
    """How many times brighter the template's light makes the user's skin: the median gain
    over the plain skin (the mean of the channels')."""
    medians = _channel_medians(skin, gain)
    return 1.0 if medians is None else float(medians[0].mean())


def _skin_chroma(rgb: np.ndarray, skin: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w, 2) the skin's local chroma (Cr, Cb) around each pixel: a low-pass weighted by
    `skin`, so that lips, brows and hair do not bleed into it."""
    chroma = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:])
    total = np.maximum(masks.feather(skin, sigma), 1e-4)
    return masks.feather(chroma * skin[..., None], sigma) / total[..., None]


def _even_chroma(face: np.ndarray, local: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The lit face (float32 RGB) with each pixel's chroma moved toward `local` by `weight`;
    luma, which carries the features and their relief, is left as it is.

    A dark face lifted into a light template gets gains of 2-3x, most in blue: its chroma
    noise and the colourless shine of dark skin came out as grey-blue patches on the light
    face. Evening the skin's chroma out removes them and keeps every shape."""
    ycc = cv2.cvtColor(face, cv2.COLOR_RGB2YCrCb)
    chroma = ycc[..., 1:]
    chroma += weight[..., None] * (local - chroma)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _median_tone_gain(face: np.ndarray, template: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """One gain per channel so the median colour of what the user brings (eyes, brows and
    lips included) is the template's there.

    The local shading gain follows the template's light but leaves a residual cast where
    the user's features and skin texture differ (freckles, stubble, make-up); this
    settles the face's overall tone on the template's. Measured on the small canvas."""
    medians = _channel_medians(weight, template, face)
    if medians is None:
        return np.ones(3, np.float32)
    t_median, f_median = medians
    gain = (t_median + 1.0) / (f_median + 1.0)
    return np.clip(gain, 0.5, 2.0).astype(np.float32)


def _channel_medians(weight: np.ndarray, *images: np.ndarray) -> list[np.ndarray] | None:
    """Each (h, w, 3) image's per-channel median where `weight` is over 0.5; None when
    that is under 64 pixels."""
    region = np.flatnonzero(weight > 0.5)
    if len(region) < 64:
        return None
    region = region[:: max(1, len(region) // 4096)]  # a median of ~4,000 samples is as good as of all
    return [np.median(np.take(image.reshape(-1, 3), region, axis=0), axis=0) for image in images]


def _feature_trust(t_lms: np.ndarray, u_lms: np.ndarray) -> dict[str, float]:
    """How far the user's lips and eyes can be stretched onto the template's: a user's
    open mouth squeezed onto closed lips smears teeth over them, and open eyes squeezed
    shut (or shut eyes pulled open) smear lashes; there the template's own feature stays."""
    trust = {"lips": user_lips_trust(t_lms, u_lms)}
    for name, span in (("right_eye", mesh.RIGHT_EYE_OPENING), ("left_eye", mesh.LEFT_EYE_OPENING)):
        mismatch = eye_openness_mismatch(t_lms, u_lms, span)
        trust[name] = 1 - float(_smoothstep(np.float32(mismatch), 0.5, 0.9))
    return {k: float(v) for k, v in trust.items()}


def _match_detail(face: np.ndarray, template_luma: np.ndarray, skin: np.ndarray,
                  features: np.ndarray) -> np.ndarray:
    """Blur the user's skin and features where they are sharper than the template's, then
    lend the skin whatever grain the template has beyond it, so the fused face has the
    template's sharpness and noise (a soft-focus or low-resolution template stays soft).

    Sharpness is compared on luma; the template's grain is its luma's fine detail."""
    t_smooth = cv2.GaussianBlur(template_luma, (0, 0), 1.0)
    t_power = _sampled_power(template_luma, t_smooth)
    f_luma = _luma(face)
    f_power = _sampled_power(f_luma)
    t_energy = _mean_in(t_power, skin)
    for region, t_region_energy in ((skin, t_energy), (features, _mean_in(t_power, features))):
        sigma = _blur_to_match(f_luma, f_power, t_region_energy, region)
        if sigma > 0:
            face = cv2.blendLinear(cv2.GaussianBlur(face, (0, 0), sigma), face, region, 1 - region)
            f_luma = _luma(face)
            f_power = _sampled_power(f_luma)
    f_energy = _mean_in(f_power, skin)
    if f_energy < 0.8 * t_energy:
        amount = float(np.sqrt(1 - f_energy / t_energy))
        # Clipped to the noise level: grain and pores come over, the template's edges do not.
        limit = 2.0 * float(np.sqrt(t_energy))
        grain = cv2.subtract(template_luma, t_smooth)
        np.clip(grain, -limit, limit, out=grain)
        grain *= skin
        grain *= amount
        face += _channels(grain)
    return face


def _channels(plane: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, w, 3): cv2.merge, several times faster than numpy's broadcasting here."""
    return cv2.merge((plane, plane, plane))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _sampled_power(luma: np.ndarray, smooth: np.ndarray | None = None) -> np.ndarray:
    """Squared fine detail (luma minus its blur at sigma 1, `smooth` when given) on every
    other row and column: a statistic of hundreds of thousands of pixels needs a quarter."""
    if smooth is None:
        smooth = cv2.GaussianBlur(luma, (0, 0), 1.0)
    detail = luma[::2, ::2] - smooth[::2, ::2]
    return detail * detail


def _mean_in(power: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean of a `_sampled_power` over the full-resolution `weight`."""
    w = np.ascontiguousarray(weight[::2, ::2])
    return float(np.dot(power.ravel(), w.ravel()) / max(float(w.sum()), 1.0))


def _blur_to_match(luma: np.ndarray, power: np.ndarray, t_energy: float,
                   region: np.ndarray) -> float:
    """The blur (sigma, 0 for none) that brings the face's fine detail (`power` of `luma`)
    in `region` down to the template's energy there."""
    if _mean_in(power, region) <= 1.3 * t_energy:
        return 0.0
    for sigma in (0.6, 0.9, 1.3, 1.8, 2.5, 3.5):
        if _mean_in(_sampled_power(cv2.GaussianBlur(luma, (0, 0), sigma)), region) <= 1.15 * t_energy:
            break
    return sigma


def _soft_highlights(image: np.ndarray, knee: float = 235.0) -> np.ndarray:
    """Compress values above the knee smoothly toward 255 (in place when contiguous): a gain
    that brightens a dark face must not burn its highlights (nose tip, forehead) to flat
    white. Only the values above the knee are touched (a few percent of them)."""
    image = np.ascontiguousarray(image)
    values = image.reshape(-1)
    hot = np.flatnonzero(values > knee)
    over = values[hot] - knee
    values[hot] -= over * over / ((255.0 - knee) + over)
    return image


def _warp_maps(prepared: PreparedTemplate, user_lms: np.ndarray, target: np.ndarray,
               ring: np.ndarray, align: Similarity, box: tuple[int, int, int, int],
               user_shape: tuple[int, ...], face_origin: tuple[int, int]
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], _UserCoverage]:
    """remap() maps over `box` of the patch that pull the template and the user's face
    onto the target landmarks, and how well the user's photo shows each bit of the face
    region (at `face_origin` in the box)."""
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0], dtype=np.float32)
    triangles, kinds = mesh.all_triangles()
    g_vertices = _vertices(target, ring) - origin
    order = warp.painter_order(g_vertices, prepared.landmarks[:, 2], triangles, kinds, mesh.SKIN)
    raster = warp.rasterize(g_vertices, triangles, (y1 - y0, x1 - x0),
                            max(1.0, prepared.face_size / GRID_CELLS), order)
    shift = np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float32)
    t_pts = prepared.landmarks[:, :2]
    t_map = warp.dense_map(raster, _vertices(t_pts, ring), triangles,
                           np.eye(2, 3, dtype=np.float32) + shift)
    to_user = _inverse_in_plane(align)
    u_ring = ring @ to_user[:, :2].T + to_user[:, 2]
    u_fallback = to_user.copy()
    u_fallback[:, 2] += to_user[:, :2] @ origin
    u_vertices = _vertices(user_lms[:, :2], u_ring)
    u_grid = warp.grid_map(raster, u_vertices, triangles, u_fallback)
    # A bit of face the user's photo shows edge-on (turned away, past the cheek) holds
    # ear, hair or background, not skin: there the template stays.
    squeeze = (warp.signed_areas(u_vertices, triangles) * align.scale ** 2
               / np.maximum(warp.signed_areas(g_vertices, triangles), 1e-3))
    seen = np.where(kinds == mesh.SKIN, _smoothstep(squeeze, 0.2, 0.5), 1.0)
    coverage = _UserCoverage(user_shape, raster, u_grid, warp.grid_values(raster, seen, outside=1.0), face_origin)
    return t_map, warp.upsample(raster, u_grid), coverage


def _bounds(points: np.ndarray, shape: tuple[int, int], pad: float) -> tuple[int, int, int, int]:
    h, w = shape
    x0, y0 = np.floor(points.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + pad).astype(int) + 1
    return max(0, x0), max(0, y0), max(min(w, x1), max(0, x0) + 1), max(min(h, y1), max(0, y0) + 1)


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


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0, 1)
    return t * t * (3 - 2 * t)

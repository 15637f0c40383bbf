"""The canvas: the fused face's region shrunk by a whole factor, where masks and light
are worked out (how much of the user shows where, the template's light on the user's skin,
hair on the forehead, glasses frames). Only their results are grown back to full size."""

from __future__ import annotations

from functools import cached_property
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, ImageArray
from facefuse.fusion import masks, mesh, tone

WORK_FACE = 80.0  # least face size in pixels on the canvas where masks and light are computed
FACE_SHRINK = (0.10, 0.04, 0.04)  # mask edge inside the oval: forehead, cheeks, chin
FACE_FEATHER = 0.015  # mask edge softness, of the face size
TEMPLATE_SPOTS = 0.02  # of the face size: thinner lines of non-skin on the template's face are skin
SHADING_SIGMA = (0.04, 0.12)  # scale of the template light carried over: rim, centre
SHADING_CENTRE = 0.75  # the centre's extent, of the oval's


def canvas_factor(face_size: float) -> int:
    """How many times smaller the canvas of masks and light is than the output (see Canvas)."""
    return max(1, int(face_size // WORK_FACE))


class Canvas:
    """A copy of the output crop shrunk by a whole factor (face >= WORK_FACE px) for masks
    and light. A whole factor keeps the shrink a plain block average, the cheapest there is;
    the crop is padded (edge pixels repeated) to a multiple of it."""

    def __init__(self, out_shape: tuple[int, ...], face_size: float, target: FloatArray) -> None:
        h, w = out_shape
        self.factor = canvas_factor(face_size)
        self.out_shape = out_shape
        self.shape = (-(-h // self.factor), -(-w // self.factor))
        self.points = (target + 0.5) / self.factor - 0.5
        self.size = face_size / self.factor

    def shrink(self, image: ImageArray) -> FloatArray:
        """float32 copy at the canvas size (uint8 input is shrunk before it is converted)."""
        if self.factor > 1:
            h, w = self.out_shape
            pad_h, pad_w = self.shape[0] * self.factor - h, self.shape[1] * self.factor - w
            if pad_h or pad_w:
                image = cast(ImageArray, cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE))
            image = cast(ImageArray, cv2.resize(image, self.shape[::-1], interpolation=cv2.INTER_AREA))
        return cast(FloatArray, image.astype(np.float32))

    def shrink_dark(self, rgb: ImageArray) -> FloatArray:
        """float32 luma at the canvas size, each block its darkest pixel: thin dark lines
        (frames of glasses) keep their darkness where an average would wash them out."""
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if self.factor > 1:
            luma = cv2.erode(
                luma, np.ones((self.factor, self.factor), np.uint8), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE
            )
            luma = luma[:: self.factor, :: self.factor]
            h, w = self.shape
            if luma.shape != (h, w):  # the crop's last partial block
                luma = cv2.copyMakeBorder(luma, 0, h - luma.shape[0], 0, w - luma.shape[1], cv2.BORDER_REPLICATE)
        return luma.astype(np.float32)

    def grow(self, image: FloatArray) -> FloatArray:
        if self.factor == 1:
            return image
        h, w = self.out_shape
        grown = cv2.resize(
            image, (self.shape[1] * self.factor, self.shape[0] * self.factor), interpolation=cv2.INTER_LINEAR
        )
        return cast(FloatArray, grown[:h, :w])

    def skin_model(self, image: ImageArray) -> tone.SkinModel:
        return tone.fit_skin_model(image, self.points, 0.035 * self.size)

    @cached_property
    def features(self) -> FloatArray:
        """Eyes, brows, lips and nostrils, soft-edged (the mask and the light both use it)."""
        return masks.feather(self.features_grown(0.015), 0.01 * self.size)

    @cached_property
    def _feature_outlines(self) -> FloatArray:
        return masks.features_outline(self.shape, self.points)

    def features_grown(self, margin: float) -> FloatArray:
        """The features (masks.features_mask) grown by `margin` of the face size."""
        return masks.grow(self._feature_outlines, margin * self.size)

    def forehead_hair(self, dark: FloatArray, model: tone.SkinModel) -> FloatArray:
        """Strands of hair (a fringe) on the forehead: far darker than the skin of the
        cheeks. Dark hair has about the colour of skin, so the skin likelihood lets thin
        strands through; their darkness does not (`dark`: luma shrunk by darkest pixels)."""
        hair = 1 - masks.smoothstep(dark / skin_luma(model), *HAIR_LUMA)
        forehead = masks.polygon_mask(self.shape, self.points[list(_FOREHEAD)])
        brows = masks.grow(
            masks.polygon_mask(
                self.shape, masks.loop(self.points, mesh.RIGHT_BROW), masks.loop(self.points, mesh.LEFT_BROW)
            ),
            0.02 * self.size,
        )
        return masks.feather(hair * forehead * (1 - brows), 0.01 * self.size)

    def template_fringe(self, dark: FloatArray, model: tone.SkinModel) -> FloatArray:
        """The template's hair hanging over its forehead (a fringe), to stay in front of the
        user's face, over the brows too, where the user's features otherwise always come.
        Hair is far darker than the cheeks (`dark`: luma shrunk by darkest pixels); a
        fringe is the hair above eye level reached straight down the face from the hair
        above it, so a brow with skin above it is never part of it."""
        pts, size = self.points, self.size
        right, left = pts[list(mesh.RIGHT_EYE)].mean(axis=0), pts[list(mesh.LEFT_EYE)].mean(axis=0)
        eye_level = (right + left) / 2
        across = (left - right) / max(float(np.linalg.norm(left - right)), 1e-3)
        up = np.array([across[1], -across[0]], np.float32)
        if up @ (pts[10] - pts[152]) < 0:
            up = -up
        h, w = self.shape
        height = (np.arange(w, dtype=np.float32) - eye_level[0]) * up[0] + (
            np.arange(h, dtype=np.float32)[:, None] - eye_level[1]
        ) * up[1]
        brows_top = float(((pts[list(mesh.RIGHT_BROW + mesh.LEFT_BROW)] - eye_level) @ up).max())
        above_face = height > brows_top + _FRINGE_ROOT * size
        face = masks.polygon_mask(self.shape, pts[list(mesh.FACE_OVAL)])
        oval = face > 0.5
        hair = 1 - masks.smoothstep(dark / skin_luma(model), *HAIR_LUMA)
        roots = (hair > 0.5) & ~oval & above_face
        if not roots.any():
            return np.zeros(self.shape, np.float32)
        eyes = (
            masks.grow(
                masks.polygon_mask(self.shape, masks.loop(pts, mesh.RIGHT_EYE), masks.loop(pts, mesh.LEFT_EYE)),
                0.01 * size,
            )
            > 0.5
        )
        candidates = (hair > 0.5) & (height > 0) & ~eyes & (oval | above_face)
        fringe = masks.reached_from_above(candidates, roots, up) * face * hair
        return masks.feather(masks.grow(fringe, 0.005 * size), 0.008 * size)

    def bare_face(self) -> FloatArray:
        """The whole oval but the eyes, brows, lips and nostrils."""
        return self._oval_without_features(self.points[list(mesh.FACE_OVAL)], 0.01)

    def skin_area(self) -> FloatArray:
        """Where both faces show plain skin: inside the oval, away from eyes, brows, lips."""
        return self._oval_without_features(masks.shrunk_oval(self.points, 0.08, 0.04, 0.04), 0.02)

    def _oval_without_features(self, oval: FloatArray, margin: float) -> FloatArray:
        """Inside `oval` and over `margin` of the face away from the features."""
        inside = masks.polygon_mask(self.shape, oval)
        return inside * (1 - self.features_grown(margin))

    def skin_levels(self, small: FloatArray, weight: FloatArray) -> list[FloatArray]:
        """A face's local skin level (log, per channel) at the scales of `shading`."""
        return tone.masked_log_lowpass(small, weight, tuple(sigma * self.size for sigma in SHADING_SIGMA))

    def shading(self, template_logs: list[FloatArray], user_logs: list[FloatArray]) -> tuple[FloatArray, FloatArray]:
        """The gain taking the user's local skin level to the template's (`skin_levels`), and
        that level of the user's (per channel). Fine-grained near the rim, where the
        template's light shapes the outline (and the jaw stays the template's); coarse in the
        centre, where the user's own relief and shading keep the identity."""
        gains = [tone.shading_gain(t, u) for t, u in zip(template_logs, user_logs)]
        c = 1 - SHADING_CENTRE
        centre = masks.polygon_mask(self.shape, masks.shrunk_oval(self.points, c, c, c))
        centre = masks.feather(centre, 0.08 * self.size)[..., None]
        user_level = np.exp(user_logs[0] + centre * (user_logs[1] - user_logs[0])) - 4.0
        return gains[0] + centre * (gains[1] - gains[0]), user_level.astype(np.float32)

    def alpha(self, t_skin: FloatArray, u_skin: FloatArray, trust: dict[str, float]) -> FloatArray:
        """How much of the user's face shows at each pixel (before fuse_degree)."""
        pts, size = self.points, self.size
        base = masks.feather(masks.polygon_mask(self.shape, masks.shrunk_oval(pts, *FACE_SHRINK)), FACE_FEATHER * size)
        centre = masks.grow(masks.inner_zone(self.shape, pts), 0.02 * size)
        centre = np.maximum(masks.feather(centre, 0.02 * size), self.features)
        # Off the centre, whatever is not skin stays in front: the template's hair over the
        # forehead, a beard along the jaw; the user's hair or background does not come in.
        # In the centre the user's features always come (glasses go on top: blend.keep_template_glasses).
        # A thin dark line on the template's skin (a fold, a wrinkle) is skin: closed over, it
        # does not stay in front as a blotch of the template in the user's face; hair, a mass, does.
        t_skin = masks.shrink(masks.grow(t_skin, TEMPLATE_SPOTS * size), TEMPLATE_SPOTS * size)
        t_gate = masks.smoothstep(masks.feather(t_skin, 0.012 * size), 0.2, 0.55)
        # From eye level down the user's own face edge stays out too: where it meets a
        # bright background, a collar or a beard, the blocks half over it pass as skin and
        # left a light or dark line down the template's cheek and jaw.
        lower = masks.feather(masks.lower_face(self.shape, pts), 0.03 * size)
        u_skin = u_skin + lower * (masks.shrink(u_skin, _USER_EDGE_MARGIN * size) - u_skin)
        u_gate = masks.smoothstep(masks.feather(u_skin, 0.01 * size), 0.15, 0.5)
        alpha = base * (centre + (1 - centre) * t_gate * u_gate)
        self._keep_template_feature(alpha, mesh.LIPS_OUTER, 0.03, trust["lips"])
        self._keep_template_feature(alpha, mesh.RIGHT_EYE, 0.045, trust["right_eye"])
        self._keep_template_feature(alpha, mesh.LEFT_EYE, 0.045, trust["left_eye"])
        for brow, top in ((mesh.RIGHT_BROW, _RIGHT_BROW_TOP), (mesh.LEFT_BROW, _LEFT_BROW_TOP)):
            band = self._band_above(top)
            brow_trust = min(
                masks.smoothstep(_mean_over(t_skin, band), 0.15, 0.4),
                masks.smoothstep(_mean_over(u_skin, band), 0.35, 0.55),
            )
            self._keep_template_feature(alpha, brow, 0.03, float(brow_trust))
        return alpha

    def _keep_template_feature(self, alpha: FloatArray, indices: tuple[int, ...], reach: float, trust: float) -> None:
        """Lower alpha (in place) over a feature the user's photo cannot supply well."""
        if trust < 1:
            alpha *= 1 - self._feature_region(indices, reach) * (1 - trust)

    def glasses_frames(self, dark: FloatArray, eye_clearance: float) -> FloatArray:
        """Soft mask of the frames of this face's glasses (`dark`: its luma shrunk by the
        darkest pixels, see shrink_dark); zero when it wears none. Nothing within
        `eye_clearance` (of the face size) of an eye counts as frame.

        Glasses are told by their bridge: a dark line across the nose between the eyes,
        where a face has no other. Frames are the dark lines around the eyes that hang
        together with it (a brow counts only where a frame touches it), never the eyes."""
        pts, size = self.points, self.size
        lines = masks.dark_lines(dark, 0.03 * size)
        bridge = masks.polygon_mask(self.shape, pts[list(mesh.NOSE_BRIDGE)])
        # On ../shared/faces glasses darken 0.66-0.80 of the bridge, a bare nose at most 0.30.
        if (lines * bridge).sum() < 0.5 * max(float(bridge.sum()), 1.0):
            return np.zeros(self.shape, np.float32)
        eyes = masks.grow(
            masks.polygon_mask(self.shape, masks.loop(pts, mesh.RIGHT_EYE), masks.loop(pts, mesh.LEFT_EYE)),
            eye_clearance * size,
        )
        frames = lines * masks.glasses_zone(self.shape, pts) * (1 - eyes)
        _, pieces = cv2.connectedComponents((frames > 0.25).astype(np.uint8), connectivity=8)
        on_bridge = np.unique(pieces[(bridge > 0.5) & (pieces > 0)])
        attached = np.isin(pieces, on_bridge).astype(np.float32)
        return frames * masks.feather(masks.grow(attached, 1.5), 0.5)

    def _band_above(self, top: tuple[int, ...]) -> FloatArray:
        """The band of forehead just above a brow: where the skin is low when hair (a
        fringe) covers it, and so most likely the brow too."""
        edge = self.points[list(top)]
        up = edge - self.points[[1, 168]].mean(axis=0)
        return masks.polygon_mask(self.shape, np.concatenate([edge, (edge + 0.25 * up)[::-1]]))

    def _feature_region(self, indices: tuple[int, ...], reach: float) -> FloatArray:
        """The feature's polygon grown and feathered by `reach` of the face size (drawn in
        a window around the feature: the rest of the canvas is 0)."""
        region = np.zeros(self.shape, np.float32)
        polygon = masks.loop(self.points, indices)
        pad = 2.5 * reach * self.size + 2
        x0, y0, x1, y1 = masks.bounds(polygon, self.shape, pad)
        mask = masks.polygon_mask((y1 - y0, x1 - x0), polygon - np.array([x0, y0], np.float32))
        region[y0:y1, x0:x1] = masks.feather(masks.grow(mask, reach * self.size), reach * self.size * 0.6)
        return region


# Above the brows up to the top of the face oval, image left to right along the brows.
_FOREHEAD = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300, 389, 251, 284, 332, 297, 338, 10, 109, 67, 103, 54, 21, 162)
HAIR_LUMA = (0.35, 0.55)  # of the cheeks' luma: hair below, shadowed skin above
# A template's fringe hangs from hair at least this far (of the face size) above its brows,
# outside the face oval: the hair of the head, not the hair at the temples beside the brows.
_FRINGE_ROOT = 0.08
# How far inside its own edge (of the face size) the user's skin counts, from eye level
# down: where the user's face edge meets a background, a collar or a beard. Above the eyes
# the skin around the brows and temples is much of the likeness, so it counts to the edge.
_USER_EDGE_MARGIN = 0.01
# How close to an eye (of the face size) a user's own frames may be: under a template's
# glasses they give way as close as they come (the template's are glasses.find_frames').
USER_FRAMES_EYE_CLEARANCE = 0.01
# Between the inner eye corners, around the top of the nose (below any frown lines).
_RIGHT_BROW_TOP = (70, 63, 105, 66, 107)
_LEFT_BROW_TOP = (300, 293, 334, 296, 336)


def _mean_over(values: FloatArray, area: FloatArray) -> np.float32:
    """The mean of `values` weighted by `area`."""
    return np.float32((values * area).sum() / max(area.sum(), 1.0))


def skin_luma(model: tone.SkinModel) -> float:
    """The luma of the plain skin of the cheeks (the skin model's centre)."""
    return max(float(np.exp(model.centre[2])) - 8.0, 1.0)

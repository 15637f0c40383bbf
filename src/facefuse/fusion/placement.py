"""Where the fused face goes: the user's face region, its alignment to the template face,
the fused landmarks, the boxes fusion writes, and the warps of both faces onto them.

The warps are piecewise-affine over the mesh triangles (warp.py), worked out on a coarse
grid: the template's and the user's full-resolution remap() maps, and for the face region
the same warps sampled at a canvas's blocks (RegionWarps.on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import masks, mesh, tone, warp
from facefuse.fusion.canvas import Canvas, canvas_factor
from facefuse.fusion.geometry import Similarity, fit_similarity, target_landmarks
from facefuse.fusion.template import PreparedTemplate, box_around, warp_vertices
from facefuse.vision.faces import Face

GRID_CELLS = 64  # warp grid cells across the face
USER_CROP_MARGIN = 0.3  # of the user's face box side, each way
# A user's face over this many times the template face's size is area-shrunk first, so the
# warp never skips pixels.
USER_SHRINK_BELOW = 0.8
FACE_REGION_PAD = 2.0  # pixels around the fused oval: the region that can take the user's pixels
# How squarely the user's photo shows a bit of skin (its area there over the fused face's):
# edge-on below the first value, fully seen above the second.
SEEN_SQUEEZE = (0.2, 0.5)
# Squeezed below the second value, a bit of skin is filled from its mirror image
# (occluders.fill) where that is seen squarely; below the first, fully.
SQUARELY_SQUEEZE = (0.3, 0.6)
# ...and shown by the user's photo this much smaller than its mirror image (its area over
# the mirror image's).
SQUARELY_OBLIQUE = (0.3, 0.6)


@dataclass(frozen=True)
class UserFace:
    """The user's face region (area-shrunk to about the template face's scale) and its
    landmarks in the region's pixels."""

    image: UInt8Array
    landmarks: FloatArray  # (478, 3)
    grayscale: bool  # a black-and-white (or sepia) photo: no colour of its own to bring
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x0, y0, x1, y1 of the photo `image` shows


@dataclass(frozen=True)
class Strength:
    """FuseOptions as fractions: `fuse` of the user's skin and features, `shape` of their
    proportions."""

    fuse: float
    shape: float

    def geometry_weights(self) -> tuple[float, float]:
        """How far inner features and the face outline move toward the user's proportions.

        The outline moves with the square of shape_degree so that the default keeps the
        template's jaw (its pose) while the full setting takes the user's face shape."""
        return self.fuse, self.fuse * self.shape * self.shape


@dataclass(frozen=True)
class Placement:
    """The fused face's landmarks and the boxes of the template's patch fusion works in:
    the warp box (all the template warp reaches) and inside it the face region (what can
    take the user's pixels, widened to whole canvas blocks)."""

    user: UserFace
    align: Similarity  # user landmarks -> template patch
    target: FloatArray  # (478, 2) the fused landmarks, patch pixels
    warp_box: tuple[int, int, int, int]  # x0, y0, x1, y1
    face_box: tuple[int, int, int, int]

    @property
    def face_in_warp_box(self) -> tuple[slice, slice]:
        (wx0, wy0, _, _), (fx0, fy0, fx1, fy1) = self.warp_box, self.face_box
        return slice(fy0 - wy0, fy1 - wy0), slice(fx0 - wx0, fx1 - wx0)

    @property
    def face_origin(self) -> FloatArray:
        return np.array(self.face_box[:2], np.float32)

    def canvas(self, face_size: float) -> Canvas:
        """The face region's canvas, with the fused landmarks on it."""
        fx0, fy0, fx1, fy1 = self.face_box
        return Canvas((fy1 - fy0, fx1 - fx0), face_size, self.target - self.face_origin)


def crop_user(user_rgb: UInt8Array, user_face: Face, template_face_size: float) -> UserFace:
    """The user's face region, area-shrunk when much larger than the template face so the
    warp never skips pixels; with its landmarks in the region's pixels."""
    x, y, side, _ = user_face.box
    x0, y0, x1, y1 = box_around(user_rgb.shape, x, y, side, USER_CROP_MARGIN)
    patch = np.ascontiguousarray(user_rgb[y0:y1, x0:x1])
    lms = user_face.landmarks.astype(np.float32).copy()
    lms[:, :2] -= (x0, y0)
    factor = template_face_size / max(side, 1.0)
    if factor < USER_SHRINK_BELOW:
        size = (max(1, round(patch.shape[1] * factor)), max(1, round(patch.shape[0] * factor)))
        patch = cast(UInt8Array, cv2.resize(patch, size, interpolation=cv2.INTER_AREA))
        lms[:, :2] = (lms[:, :2] + 0.5) * np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)]) - 0.5
        lms[:, 2] *= factor
    return UserFace(patch, lms, tone.is_colourless(patch), (x0, y0, x1, y1))


def place(prepared: PreparedTemplate, user: UserFace, strength: Strength) -> Placement:
    """The user aligned to the template face, the fused landmarks, and the boxes: only the
    warp ring can change; only the face oval can take the user's pixels."""
    t_lms = prepared.landmarks
    align = fit_similarity(user.landmarks[: mesh.MESH_POINTS], t_lms[: mesh.MESH_POINTS])
    target = target_landmarks(t_lms[:, :2], align.apply(user.landmarks)[:, :2], *strength.geometry_weights())
    patch_shape = prepared.patch.shape[:2]
    wx0, wy0, wx1, wy1 = masks.bounds(prepared.ring, patch_shape, 1.0)
    fx0, fy0, fx1, fy1 = masks.bounds(target[list(mesh.FACE_OVAL)], patch_shape, FACE_REGION_PAD)
    fx0, fy0, fx1, fy1 = max(fx0, wx0), max(fy0, wy0), min(fx1, wx1), min(fy1, wy1)
    factor = canvas_factor(prepared.face_size)
    fx0, fx1 = _whole_blocks(fx0, fx1, wx0, wx1, factor)
    fy0, fy1 = _whole_blocks(fy0, fy1, wy0, wy1, factor)
    return Placement(user, align, target, (wx0, wy0, wx1, wy1), (fx0, fy0, fx1, fy1))


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
class RegionWarps:
    """The warps of the face region on a coarse grid (warp.grid_map), to be sampled at a
    canvas's blocks: into the user's photo, into the template's patch, how squarely the
    user's photo shows each bit (seen edge-on: low), and to each bit's mirror image across
    the fused face's midline."""

    user_shape: tuple[int, ...]
    raster: warp.TriangleRaster  # over the warp box
    # (gh, gw, 14): user patch x, y; seen 0..1; template patch x, y; mirror x, y; squarely 0..1;
    # the user's surface normal x, y, z; the template's
    grids: FloatArray
    origin: tuple[int, int]  # x, y of the face region in the warp box

    def on(self, canvas: Canvas) -> CanvasWarps:
        blocks = warp.sample_blocks(self.raster, self.grids, self.origin, canvas.factor, canvas.shape)
        return CanvasWarps(self.user_shape, canvas.factor, blocks, self.origin)

    def mirror(self, box: tuple[int, int, int, int]) -> tuple[FloatArray, FloatArray]:
        """Full-resolution remap() maps over `box` (x0, y0, x1, y1 of the face region): each
        pixel's mirror image across the face's midline, in the face region's pixels."""
        x0, y0, x1, y1 = box
        ox, oy = self.origin
        maps = warp.sample_blocks(
            self.raster, np.ascontiguousarray(self.grids[..., 5:7]), (ox + x0, oy + y0), 1, (y1 - y0, x1 - x0)
        )
        return maps[..., 0] - ox, maps[..., 1] - oy


@dataclass(frozen=True)
class CanvasWarps:
    """RegionWarps at a canvas's blocks: where the user's photo really shows the face
    (inside the photo, not edge-on), and the template's own canvas quantities (worked out
    once per template) moved onto this canvas."""

    user_shape: tuple[int, ...]
    factor: int
    blocks: FloatArray  # (h, w, 14) as RegionWarps.grids
    origin: tuple[int, int]  # x, y of the face region in the warp box

    def user_coverage(self) -> FloatArray:
        """float32 0..1 at the canvas size (of the face region)."""
        return self.inside_user_photo() * self.seen

    def inside_user_photo(self) -> FloatArray:
        """float32 0..1 at the canvas size: what the user's photo holds at all."""
        inside = np.zeros(self.user_shape[:2], np.uint8)
        inside[1:-1, 1:-1] = 255
        to_user = (self.blocks[..., 0], self.blocks[..., 1])
        return warp.remap(inside, to_user, cv2.BORDER_CONSTANT).astype(np.float32) * (1 / 255)

    @property
    def seen(self) -> FloatArray:
        """How squarely the user's photo shows each block of the face (0..1; 1 off the skin)."""
        return self.blocks[..., 2]

    @property
    def squarely(self) -> FloatArray:
        """How squarely, unstretched, the user's photo shows each block (0..1; 1 off the skin)."""
        return self.blocks[..., 7]

    @property
    def user_normals(self) -> FloatArray:
        """(h, w, 3) the user's face's surface normal at each block, as its photo shows it
        (x right, y down, z toward the camera; (0, 0, 1) off the mesh)."""
        return self.blocks[..., 8:11]

    @property
    def template_normals(self) -> FloatArray:
        """(h, w, 3) the template face's surface normal at each block, likewise."""
        return self.blocks[..., 11:14]

    def mirror(self) -> tuple[FloatArray, FloatArray]:
        """remap() maps on the canvas: each block's mirror image across the face's midline."""
        to_canvas = (self.blocks[..., 5:7] - np.array(self.origin, np.float32) + 0.5) * (1 / self.factor) - 0.5
        return to_canvas[..., 0], to_canvas[..., 1]

    def template_plane(self, plane: FloatArray) -> FloatArray:
        """`plane` on the template patch's canvas (same factor), as on this canvas: each
        block takes the value at the template point its centre comes from."""
        to_patch_canvas = (self.blocks[..., 3:] + 0.5) * (1 / self.factor) - 0.5
        return warp.remap(plane, (to_patch_canvas[..., 0], to_patch_canvas[..., 1]))


@dataclass(frozen=True)
class Warps:
    """Both faces' warps onto the fused landmarks: the template's on the coarse grid
    (warp.upsample makes its remap() map), the user's remap() map over the warp box, and
    the face region's warps for its canvas."""

    raster: warp.TriangleRaster
    template_grid: tuple[FloatArray, FloatArray]
    user_map: tuple[FloatArray, FloatArray]
    region: RegionWarps

    def user_map_of_face(self, place: Placement) -> tuple[FloatArray, FloatArray]:
        inner = place.face_in_warp_box
        return self.user_map[0][inner], self.user_map[1][inner]


def warps(prepared: PreparedTemplate, place: Placement) -> Warps:
    """The template's and the user's warps over the warp box onto the fused landmarks, and
    how squarely the user's photo shows each bit of the face."""
    x0, y0, x1, y1 = place.warp_box
    origin = np.array([x0, y0], dtype=np.float32)
    triangles, kinds = mesh.all_triangles()
    g_vertices = warp_vertices(place.target, prepared.ring) - origin
    order = warp.painter_order(g_vertices, prepared.landmarks[:, 2], triangles, kinds, mesh.SKIN)
    raster = warp.rasterize(g_vertices, triangles, (y1 - y0, x1 - x0), max(1.0, prepared.face_size / GRID_CELLS), order)
    shift = np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float32)
    to_user = _inverse_in_plane(place.align)
    u_ring = prepared.ring @ to_user[:, :2].T + to_user[:, 2]
    u_fallback = to_user.copy()
    u_fallback[:, 2] += to_user[:, :2] @ origin
    u_vertices = warp_vertices(place.user.landmarks[:, :2], u_ring)
    u_normals = _as_pairs(mesh.vertex_normals(place.user.landmarks))
    t_normals = _as_pairs(prepared.warp_normals)
    t_grid, u_grid, m_grid, *normal_grids = warp.grid_maps(
        raster,
        (prepared.warp_vertices, u_vertices, g_vertices[mesh.mirrored_vertices()], *u_normals, *t_normals),
        triangles,
        (np.eye(2, 3, dtype=np.float32) + shift, u_fallback, np.eye(2, 3, dtype=np.float32), *(_FACING_CAMERA * 2)),
    )
    # A bit of face the user's photo shows edge-on (turned away, past the cheek) holds
    # ear, hair or background, not skin: there the template stays.
    u_areas = warp.signed_areas(u_vertices, triangles)
    squeeze = u_areas * place.align.scale**2 / np.maximum(warp.signed_areas(g_vertices, triangles), 1e-3)
    seen = np.where(kinds == mesh.SKIN, masks.smoothstep(squeeze, *SEEN_SQUEEZE), 1.0)
    # A stretched bit is filled from its mirror image only where the user's photo shows
    # the mirror image more squarely (a turned head's far cheek); one it shows as squarely
    # as its mirror image (a frontal photo into a turned template's near cheek) is skin
    # seen well enough, only stretched.
    oblique = u_areas / np.maximum(-warp.signed_areas(u_vertices[mesh.mirrored_vertices()], triangles), 1e-3)
    squarely = np.where(
        kinds == mesh.SKIN,
        np.maximum(masks.smoothstep(squeeze, *SQUARELY_SQUEEZE), masks.smoothstep(oblique, *SQUARELY_OBLIQUE)),
        1.0,
    )
    u_nx_ny, u_nz, t_nx_ny, t_nz = normal_grids
    grids = cast(
        FloatArray,
        cv2.merge(
            (
                *u_grid,
                warp.grid_values(raster, seen, outside=1.0),
                *t_grid,
                *m_grid,
                warp.grid_values(raster, squarely, outside=1.0),
                *u_nx_ny,
                u_nz[0],
                *t_nx_ny,
                t_nz[0],
            )
        ),
    )
    fx0, fy0 = place.face_box[:2]
    region = RegionWarps(place.user.image.shape, raster, grids, (fx0 - x0, fy0 - y0))
    return Warps(raster, t_grid, warp.upsample(raster, u_grid), region)


# Off the mesh a surface faces the camera: (2, 3) affine maps that give (0, 0) for the
# normal's x, y and (1, 0) for its z.
_FACING_CAMERA = (np.zeros((2, 3), np.float32), np.array([[0, 0, 1], [0, 0, 0]], np.float32))


def _as_pairs(normals: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(V, 3) normals as the two (V, 2) vertex arrays warp.grid_maps interpolates: x, y and z, 0."""
    return normals[:, :2], np.stack([normals[:, 2], np.zeros(len(normals), np.float32)], axis=1)


def _inverse_in_plane(align: Similarity) -> FloatArray:
    """(2, 3) the in-plane part of the user->template similarity, inverted."""
    forward = np.concatenate([align.scale * align.rotation[:2, :2], align.shift[:2, None]], axis=1)
    return np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2].astype(np.float32)

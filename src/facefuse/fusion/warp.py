"""Piecewise-affine warps over the face triangles, computed on a coarse grid.

Every part of the triangulation shares its vertices with its neighbours, so the map is
continuous: computing it on a grid a few times coarser than the image and resizing it
up loses nothing visible and costs a fraction of a full-resolution map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import BoolArray, FloatArray, ImageT, IntArray


@dataclass(frozen=True)
class TriangleRaster:
    """Which triangle covers each cell of a coarse grid over the output image."""

    ids: IntArray  # (gh, gw) int32, -1 where no triangle
    out_shape: tuple[int, int]  # (h, w) of the output image
    inverse: FloatArray  # (K, 3, 3) maps output points to barycentric coordinates


def rasterize(
    vertices: FloatArray, triangles: IntArray, out_shape: tuple[int, int], cell: float, order: IntArray
) -> TriangleRaster:
    """Triangle ids at the grid cell centres, drawn in `order` (later ones on top).

    Vectorised: every (triangle, cell of its bounding box) pair is tested at once with the
    triangle's barycentric coordinates; where triangles overlap the latest in `order` wins."""
    h, w = out_shape
    gh, gw = max(2, int(np.ceil(h / cell))), max(2, int(np.ceil(w / cell)))
    inverse, usable = _barycentric_inverse(vertices[triangles])
    corners = _to_grid(vertices, out_shape, (gh, gw))[triangles]  # (K, 3, 2)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]  # cheaper than min/max over an axis of 3
    low = np.maximum(np.ceil(np.minimum(np.minimum(a, b), c) - 1e-3), 0).astype(np.int64)
    high = np.minimum(np.floor(np.maximum(np.maximum(a, b), c) + 1e-3), [gw - 1, gh - 1]).astype(np.int64)
    spans = np.maximum(high - low + 1, 0) * usable[:, None]
    counts = spans[:, 0] * spans[:, 1]
    tri = np.repeat(np.arange(len(triangles)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cx = low[tri, 0] + local % np.maximum(spans[tri, 0], 1)
    cy = low[tri, 1] + local // np.maximum(spans[tri, 0], 1)
    px = ((cx + 0.5) * (w / gw) - 0.5).astype(np.float32)
    py = ((cy + 0.5) * (h / gh) - 0.5).astype(np.float32)
    coeff = inverse[:, :2].astype(np.float32)  # weights of corners 0 and 1; corner 2's is the rest
    w0 = coeff[:, 0, 0][tri] * px + coeff[:, 0, 1][tri] * py + coeff[:, 0, 2][tri]
    w1 = coeff[:, 1, 0][tri] * px + coeff[:, 1, 1][tri] * py + coeff[:, 1, 2][tri]
    inside = (w0 >= -1e-4) & (w1 >= -1e-4) & (w0 + w1 <= 1 + 1e-4)
    rank = np.empty(len(triangles), dtype=np.int64)
    rank[order] = np.arange(len(order))
    count = len(triangles)
    keys = np.sort((cy * gw + cx)[inside] * count + rank[tri[inside]])  # by cell, then drawing order
    cells = keys // count
    last = np.ones(len(keys), dtype=bool)
    last[:-1] = cells[1:] != cells[:-1]
    ids = np.full(gh * gw, -1, dtype=np.int32)
    ids[cells[last]] = order[keys[last] % count]
    return TriangleRaster(ids.reshape(gh, gw), out_shape, inverse)


def dense_map(
    raster: TriangleRaster, source: FloatArray, triangles: IntArray, fallback: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Full-resolution (map_x, map_y) for cv2.remap taking each raster triangle onto the
    same triangle of `source` vertices; cells off the mesh use the `fallback` (2, 3) affine."""
    return upsample(raster, grid_map(raster, source, triangles, fallback))


def upsample(raster: TriangleRaster, grid: tuple[FloatArray, FloatArray]) -> tuple[FloatArray, FloatArray]:
    """A grid_map at full resolution: linear between the cells' centres and beyond the
    outer ones (where the resize alone would repeat the edge cells' values: a strip up to
    half a cell deep along each edge pulled from one line of the image)."""
    h, w = raster.out_shape
    map_x, map_y = (
        _extend_edges(cast(FloatArray, cv2.resize(plane, (w, h), interpolation=cv2.INTER_LINEAR)), plane.shape)
        for plane in grid
    )
    return map_x, map_y


def _extend_edges(full: FloatArray, grid_shape: tuple[int, ...]) -> FloatArray:
    """`full` (a grid resized up, in place) continued linearly past the outer cell centres."""
    for axis, cells in ((1, grid_shape[1]), (0, grid_shape[0])):
        size = full.shape[axis]
        view = full if axis == 1 else full.T
        half = 0.5 * size / cells - 0.5  # the first cell's centre, in pixels
        first, last = int(np.ceil(half)), int(np.floor(size - 1 - half))
        if first > 0:
            slope = view[:, first + 1] - view[:, first]
            view[:, :first] = view[:, first, None] + np.arange(-first, 0, dtype=np.float32) * slope[:, None]
        if last < size - 1:
            slope = view[:, last] - view[:, last - 1]
            view[:, last + 1 :] = view[:, last, None] + np.arange(1, size - last, dtype=np.float32) * slope[:, None]
    return full


def grid_map(
    raster: TriangleRaster, source: FloatArray, triangles: IntArray, fallback: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """dense_map at the raster's grid cells (before it is resized to the output)."""
    return grid_maps(raster, (source,), triangles, (fallback,))[0]


def grid_maps(
    raster: TriangleRaster, sources: tuple[FloatArray, ...], triangles: IntArray, fallbacks: tuple[FloatArray, ...]
) -> list[tuple[FloatArray, FloatArray]]:
    """grid_map for several vertex sets over one raster, worked out together (one lookup
    of each cell's triangle for all)."""
    corners = np.concatenate([source[triangles].astype(np.float64) for source in sources], axis=2)  # (k, vertex, xy...)
    affines = np.matmul(corners.transpose(0, 2, 1), raster.inverse)  # einsum kvc,kvj->kcj, as a cheaper matmul
    table = np.concatenate([affines, np.concatenate(fallbacks)[None]]).astype(np.float32)
    gh, gw = raster.ids.shape
    h, w = raster.out_shape
    xs = (np.arange(gw, dtype=np.float32) + 0.5) * (w / gw) - 0.5
    ys = (np.arange(gh, dtype=np.float32) + 0.5) * (h / gh) - 0.5
    coeff = table[raster.ids]  # id -1 picks the fallbacks, the last row
    planes = [
        coeff[..., row, 0] * xs + coeff[..., row, 1] * ys[:, None] + coeff[..., row, 2]
        for row in range(2 * len(sources))
    ]
    return [(planes[2 * i], planes[2 * i + 1]) for i in range(len(sources))]


def grid_values(raster: TriangleRaster, values: FloatArray, outside: float = 0.0) -> FloatArray:
    """One value per triangle, at the raster's grid cells (float32, `outside` off the mesh)."""
    return cast(FloatArray, np.append(values.astype(np.float32), np.float32(outside))[raster.ids])


def sample_blocks(
    raster: TriangleRaster, grid: FloatArray, origin: tuple[int, int], factor: int, shape: tuple[int, int]
) -> FloatArray:
    """A grid quantity (grid_map, grid_values) as it would be at full resolution averaged
    over blocks of factor x factor pixels: `shape` blocks from `origin` (x, y) of the
    output. Taken at the blocks' centres straight from the grid, it is the same (the map
    is linear between cells) without making the full-resolution plane first."""
    h, w = raster.out_shape
    gh, gw = raster.ids.shape
    sx, sy = gw / w, gh / h
    to_grid = np.array(
        [
            [factor * sx, 0, (origin[0] + 0.5 * factor) * sx - 0.5],
            [0, factor * sy, (origin[1] + 0.5 * factor) * sy - 0.5],
        ],
        np.float32,
    )
    blocks = cv2.warpAffine(
        grid,
        to_grid,
        (shape[1], shape[0]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cast(FloatArray, blocks)


def signed_areas(vertices: FloatArray, triangles: IntArray) -> FloatArray:
    """Each triangle's area, positive when its corners run clockwise on screen (y down)."""
    x, y = vertices[:, 0], vertices[:, 1]
    a, b, c = triangles.T  # one coordinate gathered at a time: cheaper than vertices[triangles[:, k]]
    ax, bx, cx, ay, by, cy = x.take(a), x.take(b), x.take(c), y.take(a), y.take(b), y.take(c)
    return cast(FloatArray, 0.5 * ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)))


def remap(
    image: ImageT,
    maps: tuple[FloatArray, FloatArray],
    border: int = cv2.BORDER_REPLICATE,
    out: ImageT | None = None,
) -> ImageT:
    return cast(ImageT, cv2.remap(image, maps[0], maps[1], dst=out, interpolation=cv2.INTER_LINEAR, borderMode=border))


def painter_order(
    vertices: FloatArray, depth: FloatArray, triangles: IntArray, kinds: IntArray, surface_kind: int
) -> IntArray:
    """Drawing order: the other kinds first, then the surface's triangles that face away
    (folded under the nose, past the cheek's silhouette), then those that face the camera
    from far to near, so the visible surface always ends on top."""
    area = signed_areas(vertices, triangles)
    surface = kinds == surface_kind
    index = np.arange(len(triangles))
    corner_depth = depth.take(np.minimum(triangles, len(depth) - 1))
    near = -(corner_depth[:, 0] + corner_depth[:, 1] + corner_depth[:, 2]) / 3
    front = surface & (area > 0)
    return np.concatenate(
        [index[~surface], index[surface & ~front], index[front][np.argsort(near[front], kind="stable")]]
    )


def _barycentric_inverse(corners: FloatArray) -> tuple[FloatArray, BoolArray]:
    """(K, 3, 3) matrices B with B @ (x, y, 1) = barycentric weights in each triangle, and
    which triangles have an area (a collapsed one gets the identity and covers nothing)."""
    c = corners.astype(np.float64)
    x, y = c[..., 0], c[..., 1]
    det: FloatArray = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    usable = np.abs(det) >= 1e-9
    safe = np.where(usable, det, 1.0)
    inverse = np.empty((len(c), 3, 3))
    for i in range(3):  # weight of corner i: the area opposite it, over the whole
        j, k = (i + 1) % 3, (i + 2) % 3
        inverse[:, i, 0] = (y[:, j] - y[:, k]) / safe
        inverse[:, i, 1] = (x[:, k] - x[:, j]) / safe
        inverse[:, i, 2] = (x[:, j] * y[:, k] - x[:, k] * y[:, j]) / safe
    inverse[~usable] = np.eye(3)
    return inverse, usable


def _to_grid(points: FloatArray, out_shape: tuple[int, int], grid_shape: tuple[int, int]) -> FloatArray:
    (h, w), (gh, gw) = out_shape, grid_shape
    scale = np.array([gw / w, gh / h], dtype=np.float32)
    return (points + 0.5) * scale - 0.5

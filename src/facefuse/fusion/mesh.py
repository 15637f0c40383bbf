"""The face mesh topology: landmark groups and triangles of mediapipe's 478-point mesh."""

from __future__ import annotations

from collections import deque
from functools import lru_cache

import numpy as np

# The eye and brow loops are the vision package's (it checks fits with them).
from facefuse.vision.upright import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE  # noqa: F401

# Closed loops of landmark indices, in drawing order.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
             400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
             54, 103, 67, 109)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37,
              39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82,
              81, 80, 191)
NOSTRILS = (129, 64, 98, 97, 2, 326, 327, 294, 358)
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first
LEFT_IRIS = (473, 474, 475, 476, 477)
RIGHT_CHEEK = (50, 101, 118, 123, 147, 187, 205, 36, 142, 117)
LEFT_CHEEK = (280, 330, 347, 352, 376, 411, 425, 266, 371, 346)

MOUTH_CORNERS = (61, 291)
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)
# How open a feature is: (top, bottom, corner, corner), the gap over the width.
MOUTH_OPENING = (13, 14, 61, 291)
RIGHT_EYE_OPENING = (159, 145, 33, 133)
LEFT_EYE_OPENING = (386, 374, 263, 362)
# The inner lips' upper and lower contours, corner to corner, point facing point.
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

MESH_POINTS = 468

# Extra vertices appended after the 478 landmarks to close the holes and the outer ring.
MOUTH_CENTRE = 478
RIGHT_EYE_CENTRE = 479
LEFT_EYE_CENTRE = 480
RING_START = 481
VERTEX_COUNT = RING_START + len(FACE_OVAL)

# Triangle kinds: which image each part of the warped face comes from.
SKIN, MOUTH_HOLE, RIGHT_EYE_HOLE, LEFT_EYE_HOLE, RING = range(5)


@lru_cache(maxsize=1)
def mesh_edges() -> np.ndarray:
    """(E, 2) undirected edges of the 468-point tessellation."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return np.array(sorted({tuple(sorted(e)) for e in FACEMESH_TESSELATION}), dtype=np.int32)


@lru_cache(maxsize=1)
def mesh_triangles() -> np.ndarray:
    """(852, 3) triangles of the face surface, found as 3-cliques of the tessellation edges."""
    edges = mesh_edges()
    neighbours = _neighbour_sets(edges)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    # Two 3-cycles around the nostrils are not faces of the mesh (their edges are shared by
    # three triangles); drop them so every interior edge has exactly two triangles.
    triangles -= {(49, 64, 129), (279, 294, 358)}
    return _consistently_oriented(sorted(triangles))


@lru_cache(maxsize=1)
def all_triangles() -> tuple[np.ndarray, np.ndarray]:
    """Triangles covering the face, its holes and an outer ring, with their kinds.

    The holes (mouth, eyes) are fans around an extra centre vertex; the ring joins the face
    oval to a loop of extra vertices further out, so a warp of the face fades to nothing.
    """
    parts = [(mesh_triangles(), SKIN),
             (_fan(LIPS_INNER, MOUTH_CENTRE), MOUTH_HOLE),
             (_fan(RIGHT_EYE, RIGHT_EYE_CENTRE), RIGHT_EYE_HOLE),
             (_fan(LEFT_EYE, LEFT_EYE_CENTRE), LEFT_EYE_HOLE),
             (_ring_strip(), RING)]
    triangles = np.concatenate([t for t, _ in parts])
    kinds = np.concatenate([np.full(len(t), k, dtype=np.int32) for t, k in parts])
    return triangles, kinds


@lru_cache(maxsize=1)
def hops_from_oval() -> np.ndarray:
    """(468,) graph distance of each mesh point from the face oval (0 on the oval)."""
    neighbours = _neighbour_sets(mesh_edges())
    hops = np.full(MESH_POINTS, -1, dtype=np.int32)
    queue = deque(FACE_OVAL)
    hops[list(FACE_OVAL)] = 0
    while queue:
        i = queue.popleft()
        for j in neighbours[i]:
            if hops[j] < 0:
                hops[j] = hops[i] + 1
                queue.append(j)
    return hops


@lru_cache(maxsize=1)
def neighbour_lists() -> tuple[np.ndarray, np.ndarray]:
    """CSR-style neighbours of the 468 mesh points: (indptr, indices)."""
    neighbours = _neighbour_sets(mesh_edges())
    indptr = np.cumsum([0] + [len(neighbours[i]) for i in range(MESH_POINTS)])
    indices = np.concatenate([sorted(neighbours[i]) for i in range(MESH_POINTS)])
    return indptr.astype(np.int32), indices.astype(np.int32)


@lru_cache(maxsize=1)
def neighbour_mean_matrix() -> np.ndarray:
    """(468, 468) float32: row i averages the neighbours of mesh point i."""
    indptr, indices = neighbour_lists()
    matrix = np.zeros((MESH_POINTS, MESH_POINTS), dtype=np.float32)
    for point in range(MESH_POINTS):
        row = indices[indptr[point]:indptr[point + 1]]
        matrix[point, row] = 1.0 / len(row)
    return matrix


def _consistently_oriented(triangles: list[tuple[int, ...]]) -> np.ndarray:
    """The triangles with their corners reordered so that neighbours agree on the winding
    (each shared edge runs opposite ways): then the sign of a triangle's area in an image
    says whether that bit of the face faces the camera or away from it."""
    by_edge: dict[tuple[int, int], list[int]] = {}
    for t, tri in enumerate(triangles):
        for a, b in ((tri[0], tri[1]), (tri[1], tri[2]), (tri[2], tri[0])):
            by_edge.setdefault((min(a, b), max(a, b)), []).append(t)
    oriented: dict[int, tuple[int, ...]] = {0: triangles[0]}
    queue = deque([0])
    while queue:
        t = queue.popleft()
        a, b, c = oriented[t]
        for u, v in ((a, b), (b, c), (c, a)):
            for n in by_edge[(min(u, v), max(u, v))]:
                if n in oriented:
                    continue
                x, y, z = triangles[n]
                # The neighbour must run the shared edge as v -> u.
                runs = {(x, y), (y, z), (z, x)}
                oriented[n] = (x, y, z) if (v, u) in runs else (x, z, y)
                queue.append(n)
    return np.array([oriented[t] for t in range(len(triangles))], dtype=np.int32)


def _neighbour_sets(edges: np.ndarray) -> dict[int, set[int]]:
    neighbours: dict[int, set[int]] = {i: set() for i in range(MESH_POINTS)}
    for a, b in edges:
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    return neighbours


def _fan(loop: tuple[int, ...], centre: int) -> np.ndarray:
    return np.array([(centre, loop[i], loop[(i + 1) % len(loop)]) for i in range(len(loop))],
                    dtype=np.int32)


def _ring_strip() -> np.ndarray:
    n = len(FACE_OVAL)
    rows = []
    for i in range(n):
        j = (i + 1) % n
        rows.append((FACE_OVAL[i], FACE_OVAL[j], RING_START + i))
        rows.append((FACE_OVAL[j], RING_START + j, RING_START + i))
    return np.array(rows, dtype=np.int32)

"""The face mesh topology: landmark groups and triangles of mediapipe's 478-point mesh.

Most of its length is data: the index tables (an entry a line, as the formatter writes
them) and the mirror table; they belong together, so the module is one file.
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache
from typing import cast

import numpy as np

from facefuse.arrays import FloatArray, IntArray

# The eye and brow loops are the vision package's (it checks fits with them).
from facefuse.vision.upright import LEFT_BROW as LEFT_BROW
from facefuse.vision.upright import LEFT_EYE as LEFT_EYE
from facefuse.vision.upright import RIGHT_BROW as RIGHT_BROW
from facefuse.vision.upright import RIGHT_EYE as RIGHT_EYE

# Closed loops of landmark indices, in drawing order.
FACE_OVAL: tuple[int, ...] = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
NOSTRILS = (129, 64, 98, 97, 2, 326, 327, 294, 358)
NOSE_BRIDGE = (133, 168, 362, 6)  # the eyes' inner corners and the nose between them: where glasses rest
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

# The mesh point each of the 468 is the mirror image of, across the face's midline (the
# midline's points are their own); tests/test_fusion.py checks it on frontal faces.
MIRROR = (
    0,
    1,
    2,
    248,
    4,
    5,
    6,
    249,
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    250,
    251,
    252,
    253,
    254,
    255,
    256,
    257,
    258,
    259,
    260,
    261,
    262,
    263,
    264,
    265,
    266,
    267,
    268,
    269,
    270,
    271,
    272,
    273,
    274,
    275,
    276,
    277,
    278,
    279,
    280,
    281,
    282,
    283,
    284,
    285,
    286,
    287,
    288,
    289,
    290,
    291,
    292,
    293,
    294,
    295,
    296,
    297,
    298,
    299,
    300,
    301,
    302,
    303,
    304,
    305,
    306,
    307,
    308,
    309,
    310,
    311,
    312,
    313,
    314,
    315,
    316,
    317,
    318,
    319,
    320,
    321,
    322,
    323,
    94,
    324,
    325,
    326,
    327,
    328,
    329,
    330,
    331,
    332,
    333,
    334,
    335,
    336,
    337,
    338,
    339,
    340,
    341,
    342,
    343,
    344,
    345,
    346,
    347,
    348,
    349,
    350,
    351,
    352,
    353,
    354,
    355,
    356,
    357,
    358,
    359,
    360,
    361,
    362,
    363,
    364,
    365,
    366,
    367,
    368,
    369,
    370,
    371,
    372,
    373,
    374,
    375,
    376,
    377,
    378,
    379,
    151,
    152,
    380,
    381,
    382,
    383,
    384,
    385,
    386,
    387,
    388,
    389,
    390,
    164,
    391,
    392,
    393,
    168,
    394,
    395,
    396,
    397,
    398,
    399,
    175,
    400,
    401,
    402,
    403,
    404,
    405,
    406,
    407,
    408,
    409,
    410,
    411,
    412,
    413,
    414,
    415,
    416,
    417,
    418,
    195,
    419,
    197,
    420,
    199,
    200,
    421,
    422,
    423,
    424,
    425,
    426,
    427,
    428,
    429,
    430,
    431,
    432,
    433,
    434,
    435,
    436,
    437,
    438,
    439,
    440,
    441,
    442,
    443,
    444,
    445,
    446,
    447,
    448,
    449,
    450,
    451,
    452,
    453,
    454,
    455,
    456,
    457,
    458,
    459,
    460,
    461,
    462,
    463,
    464,
    465,
    466,
    467,
    3,
    7,
    20,
    21,
    22,
    23,
    24,
    25,
    26,
    27,
    28,
    29,
    30,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    45,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    66,
    67,
    68,
    69,
    70,
    71,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    83,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
    91,
    92,
    93,
    95,
    96,
    97,
    98,
    99,
    100,
    101,
    102,
    103,
    104,
    105,
    106,
    107,
    108,
    109,
    110,
    111,
    112,
    113,
    114,
    115,
    116,
    117,
    118,
    119,
    120,
    121,
    122,
    123,
    124,
    125,
    126,
    127,
    128,
    129,
    130,
    131,
    132,
    133,
    134,
    135,
    136,
    137,
    138,
    139,
    140,
    141,
    142,
    143,
    144,
    145,
    146,
    147,
    148,
    149,
    150,
    153,
    154,
    155,
    156,
    157,
    158,
    159,
    160,
    161,
    162,
    163,
    165,
    166,
    167,
    169,
    170,
    171,
    172,
    173,
    174,
    176,
    177,
    178,
    179,
    180,
    181,
    182,
    183,
    184,
    185,
    186,
    187,
    188,
    189,
    190,
    191,
    192,
    193,
    194,
    196,
    198,
    201,
    202,
    203,
    204,
    205,
    206,
    207,
    208,
    209,
    210,
    211,
    212,
    213,
    214,
    215,
    216,
    217,
    218,
    219,
    220,
    221,
    222,
    223,
    224,
    225,
    226,
    227,
    228,
    229,
    230,
    231,
    232,
    233,
    234,
    235,
    236,
    237,
    238,
    239,
    240,
    241,
    242,
    243,
    244,
    245,
    246,
    247,
)

# Extra vertices appended after the 478 landmarks to close the holes and the outer ring.
MOUTH_CENTRE = 478
RIGHT_EYE_CENTRE = 479
LEFT_EYE_CENTRE = 480
RING_START = 481
VERTEX_COUNT = RING_START + len(FACE_OVAL)

# Triangle kinds: which image each part of the warped face comes from.
SKIN, MOUTH_HOLE, RIGHT_EYE_HOLE, LEFT_EYE_HOLE, RING = range(5)


def iris_circle(points: FloatArray, iris: tuple[int, ...]) -> tuple[FloatArray, float]:
    """An iris's centre and radius (`iris`: RIGHT_IRIS or LEFT_IRIS, centre first): the mean
    distance of its rim's points from its centre."""
    centre = points[iris[0]]
    return centre, float(np.linalg.norm(points[list(iris[1:])] - centre, axis=1).mean())


@lru_cache(maxsize=1)
def mesh_edges() -> IntArray:
    """(E, 2) undirected edges of the 468-point tessellation."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return np.array(sorted({tuple(sorted(e)) for e in FACEMESH_TESSELATION}), dtype=np.int32)


@lru_cache(maxsize=1)
def mesh_triangles() -> IntArray:
    """(852, 3) triangles of the face surface, found as 3-cliques of the tessellation edges."""
    edges = mesh_edges()
    neighbours = _neighbour_sets(edges)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    # Two 3-cycles around the nostrils are not faces of the mesh (their edges are shared by
    # three triangles); drop them so every interior edge has exactly two triangles.
    triangles -= {(49, 64, 129), (279, 294, 358)}
    return _consistently_oriented(sorted(triangles))


@lru_cache(maxsize=1)
def all_triangles() -> tuple[IntArray, IntArray]:
    """Triangles covering the face, its holes and an outer ring, with their kinds.

    The holes (mouth, eyes) are fans around an extra centre vertex; the ring joins the face
    oval to a loop of extra vertices further out, so a warp of the face fades to nothing.
    """
    parts = [
        (mesh_triangles(), SKIN),
        (_fan(LIPS_INNER, MOUTH_CENTRE), MOUTH_HOLE),
        (_fan(RIGHT_EYE, RIGHT_EYE_CENTRE), RIGHT_EYE_HOLE),
        (_fan(LEFT_EYE, LEFT_EYE_CENTRE), LEFT_EYE_HOLE),
        (_ring_strip(), RING),
    ]
    triangles = np.concatenate([t for t, _ in parts])
    kinds = np.concatenate([np.full(len(t), k, dtype=np.int32) for t, k in parts])
    return triangles, kinds


@lru_cache(maxsize=1)
def mirrored_vertices() -> IntArray:
    """(VERTEX_COUNT,) the warp vertex each warp vertex is the mirror image of: MIRROR for
    the mesh, the other iris, the other eye's centre, the mouth's own, the ring's mirror."""
    order = np.arange(VERTEX_COUNT)
    order[:MESH_POINTS] = MIRROR
    order[list(RIGHT_IRIS)], order[list(LEFT_IRIS)] = LEFT_IRIS, RIGHT_IRIS
    order[RIGHT_EYE_CENTRE], order[LEFT_EYE_CENTRE] = LEFT_EYE_CENTRE, RIGHT_EYE_CENTRE
    position = {point: i for i, point in enumerate(FACE_OVAL)}
    order[RING_START:] = [RING_START + position[MIRROR[point]] for point in FACE_OVAL]
    return order


def vertex_normals(points: FloatArray) -> FloatArray:
    """(VERTEX_COUNT, 3) unit normals at the warp vertices of a face with landmarks `points`
    ((478, 3) pixels, z away from the camera as mediapipe gives it), turned toward the
    camera (x right, y down, z toward the camera): the mesh's from its triangles (weighted
    by their areas), a hole's centre its loop's mean, a ring vertex its oval point's."""
    tri = mesh_triangles()
    p = points[:MESH_POINTS].astype(np.float64)
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    across = np.cross(b - a, c - a)
    normals = np.zeros((MESH_POINTS, 3))
    for corner in range(3):
        np.add.at(normals, tri[:, corner], across)
    normals[:, 2] *= -1  # toward the camera
    if normals[:, 2].sum() < 0:  # the triangles' winding decides the sign: the face looks at the camera
        normals = -normals
    out = np.zeros((VERTEX_COUNT, 3))
    out[:MESH_POINTS] = normals
    for centre, loop in ((MOUTH_CENTRE, LIPS_INNER), (RIGHT_EYE_CENTRE, RIGHT_EYE), (LEFT_EYE_CENTRE, LEFT_EYE)):
        out[centre] = normals[list(loop)].sum(axis=0)
    out[RIGHT_IRIS[0] : LEFT_IRIS[-1] + 1] = out[RIGHT_EYE_CENTRE]
    out[RING_START:] = normals[list(FACE_OVAL)]
    return cast(FloatArray, (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)).astype(np.float32))


@lru_cache(maxsize=1)
def hops_from_oval() -> IntArray:
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
def neighbour_lists() -> tuple[IntArray, IntArray]:
    """CSR-style neighbours of the 468 mesh points: (indptr, indices)."""
    neighbours = _neighbour_sets(mesh_edges())
    indptr = np.cumsum([0] + [len(neighbours[i]) for i in range(MESH_POINTS)])
    indices = np.concatenate([sorted(neighbours[i]) for i in range(MESH_POINTS)])
    return indptr.astype(np.int32), indices.astype(np.int32)


@lru_cache(maxsize=1)
def neighbour_mean_matrix() -> FloatArray:
    """(468, 468) float32: row i averages the neighbours of mesh point i."""
    indptr, indices = neighbour_lists()
    matrix = np.zeros((MESH_POINTS, MESH_POINTS), dtype=np.float32)
    for point in range(MESH_POINTS):
        row = indices[indptr[point] : indptr[point + 1]]
        matrix[point, row] = 1.0 / len(row)
    return matrix


def _consistently_oriented(triangles: list[tuple[int, ...]]) -> IntArray:
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


def _neighbour_sets(edges: IntArray) -> dict[int, set[int]]:
    neighbours: dict[int, set[int]] = {i: set() for i in range(MESH_POINTS)}
    for a, b in edges:
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    return neighbours


def _fan(loop: tuple[int, ...], centre: int) -> IntArray:
    return np.array([(centre, loop[i], loop[(i + 1) % len(loop)]) for i in range(len(loop))], dtype=np.int32)


def _ring_strip() -> IntArray:
    n = len(FACE_OVAL)
    rows = []
    for i in range(n):
        j = (i + 1) % n
        rows.append((FACE_OVAL[i], FACE_OVAL[j], RING_START + i))
        rows.append((FACE_OVAL[j], RING_START + j, RING_START + i))
    return np.array(rows, dtype=np.int32)

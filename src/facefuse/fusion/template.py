"""A template face, prepared once: its region, landmarks, warp ring, and what of it is skin,
stays in front (a fringe, a beard), each worked out on its canvas, or is rigid (the frames
of its glasses, glasses/; its hands and what they hold, in_front.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from facefuse.arrays import FloatArray, UInt8Array
from facefuse.fusion import beard, glasses, in_front, masks, mesh, tone
from facefuse.fusion.canvas import Canvas
from facefuse.fusion.glasses import Frames
from facefuse.vision.faces import Face

CROP_MARGIN = 0.25  # of the face box side, each way: the region fusion may change
RING_REACH = 1.15  # outer ring of the template warp, as a multiple of the oval's radius


@dataclass(frozen=True)
class PreparedTemplate:
    """What fusion needs from one template face; compute once per template face."""

    image: UInt8Array  # the whole template, never written to
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 of the region fusion may change
    patch: UInt8Array  # that region, uint8, its glasses' frames painted out (glasses.without_frames)
    landmarks: FloatArray  # (478, 3) in patch pixels
    face_size: float
    grayscale: bool
    glasses: bool  # wears glasses: their frames are put back unwarped (blend.keep_template_glasses)
    canvas_skin: FloatArray  # its skin likelihood on the patch's canvas, warped onto each fusion's
    canvas_in_front: FloatArray  # what of it stays in front for its hair (0..1), likewise
    ring: FloatArray  # the outer ring of the warp (warp_ring), patch pixels
    warp_vertices: FloatArray  # the template's vertices of the warp mesh (warp_vertices)
    warp_normals: FloatArray  # its surface's normals at those vertices (mesh.vertex_normals)
    beard: float = 0.0  # how surely it has a beard (0..1): kept from the jaw inward (beard.beard_kept)
    frames: Frames | None = None  # its glasses' frames, as they are in the template
    hands: in_front.InFront | None = None  # its hands over its face, as they are in the template
    canvas_hands: FloatArray | None = None  # those hands on the patch's canvas (0..1)

    @property
    def nbytes(self) -> int:
        """The arrays it keeps of its own (the whole template `image` is shared, not counted)."""
        frames = self.frames.nbytes if self.frames is not None else 0
        hands = 0 if self.hands is None or self.canvas_hands is None else self.hands.nbytes + self.canvas_hands.nbytes
        return (
            frames
            + hands
            + sum(
                a.nbytes
                for a in (
                    self.patch,
                    self.landmarks,
                    self.canvas_skin,
                    self.canvas_in_front,
                    self.ring,
                    self.warp_vertices,
                    self.warp_normals,
                )
            )
        )

    def changed_box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the image fusion may change (what the template warp reaches)."""
        x0, y0, x1, y1 = masks.bounds(self.ring, self.patch.shape[:2], 1.0)
        return self.crop[0] + x0, self.crop[1] + y0, self.crop[0] + x1, self.crop[1] + y1


def prepare_template(
    template_rgb: UInt8Array, template_face: Face, find_held: in_front.HeldMask | None = None
) -> PreparedTemplate:
    """`find_held`: what hands cover of the face (in_front.HeldMask), asked once here."""
    x, y, side, _ = template_face.box
    x0, y0, x1, y1 = box_around(template_rgb.shape, x, y, side, CROP_MARGIN)
    patch = np.ascontiguousarray(template_rgb[y0:y1, x0:x1])
    hands = None if find_held is None else in_front.in_front(patch, find_held((x0, y0, x1, y1), (y1 - y0, x1 - x0)))
    landmarks = template_face.landmarks.astype(np.float32).copy()
    landmarks[:, :2] -= (x0, y0)
    # Frames are rigid and stay in front: the rest is worked out, and warped, without them.
    frames = glasses.find_frames(patch, landmarks, float(side))
    if frames is not None:
        patch = glasses.without_frames(patch, frames, float(side))
    canvas = Canvas(patch.shape[:2], float(side), landmarks[:, :2])
    small, dark = canvas.shrink(patch), canvas.shrink_dark(patch)
    model = canvas.skin_model(small)
    beard_amount = beard.beard_amount(patch, landmarks[:, :2])
    ring = warp_ring(landmarks[:, :2])
    canvas_skin = tone.skin_likelihood(small, model)
    canvas_hands = None
    if hands is not None:
        # Alpha takes a hand for skin, so the user's face comes up to it (the hand goes on
        # top, unwarped: in_front.put_back); its light is read without it (skin.template_skin).
        canvas_hands = in_front.on_canvas(canvas, hands, patch.shape)
        canvas_skin = np.maximum(canvas_skin, canvas_hands)
    return PreparedTemplate(
        image=template_rgb,
        crop=(x0, y0, x1, y1),
        patch=patch,
        landmarks=landmarks,
        face_size=float(side),
        grayscale=tone.is_grayscale(patch),
        glasses=frames is not None,
        canvas_skin=canvas_skin,
        canvas_in_front=_hair_in_front(canvas, dark, small, model, beard_amount),
        ring=ring,
        warp_vertices=warp_vertices(landmarks[:, :2], ring),
        warp_normals=mesh.vertex_normals(landmarks),
        beard=beard_amount,
        frames=frames,
        hands=hands,
        canvas_hands=canvas_hands,
    )


def _hair_in_front(
    canvas: Canvas, t_dark: FloatArray, t_small: FloatArray, t_model: tone.SkinModel, beard_amount: float
) -> FloatArray:
    """How much of the template stays in front for its hair (canvas size, 0..1): its fringe,
    over the brows too (the user's features showing through it come out as ghosted brows
    under a see-through fringe), and its beard from the jaw inward."""
    kept = canvas.template_fringe(t_dark, t_model)
    if beard_amount > 0:
        kept = cast(FloatArray, 1 - (1 - kept) * (1 - beard.beard_kept(canvas, t_small, beard_amount)))
    return kept


def box_around(shape: tuple[int, ...], x: float, y: float, side: float, margin: float) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of a face box grown by `margin` of its side each way, within the image."""
    h, w = shape[:2]
    pad = margin * side
    return (
        max(0, int(np.floor(x - pad))),
        max(0, int(np.floor(y - pad))),
        min(w, int(np.ceil(x + side + pad))),
        min(h, int(np.ceil(y + side + pad))),
    )


def warp_ring(points: FloatArray) -> FloatArray:
    """The loop of extra vertices around the face oval where the warp fades to nothing."""
    centre = masks.face_centre(points)
    return centre + RING_REACH * (points[list(mesh.FACE_OVAL)] - centre)


def warp_vertices(points: FloatArray, ring: FloatArray) -> FloatArray:
    """The 478 landmarks plus the centres of the mouth and eye holes and the outer ring."""
    mouth = points[list(mesh.LIPS_INNER)].mean(axis=0)
    right = _eye_centre(points, mesh.RIGHT_EYE, mesh.RIGHT_IRIS[0])
    left = _eye_centre(points, mesh.LEFT_EYE, mesh.LEFT_IRIS[0])
    return np.concatenate([points[:478], [mouth, right, left], ring]).astype(np.float32)


def _eye_centre(points: FloatArray, loop: tuple[int, ...], iris: int) -> FloatArray:
    """The iris centre when it lies inside the eye opening, else the opening's centroid."""
    contour = points[list(loop)].astype(np.float32)
    inside = cv2.pointPolygonTest(contour.reshape(-1, 1, 2), tuple(map(float, points[iris])), True)
    return cast(FloatArray, points[iris] if inside > 0.5 else contour.mean(axis=0))

"""Hands and microphones over a face (issue 22): the user's are never carried into the
result, the template's stay in front as they are.

A hand and a hand holding a microphone are cut out of a real photo (tests/fixtures/hands,
made by benchmarks/cutouts.py) and pasted over the bundled photos, scaled and turned with
the face. The user side is told by invariance: a result that does not carry the hand does
not change when the hand does (the same hand, darker); a carried hand shows its change."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, RunningServer, face
from PIL import Image
from test_api import fuse_body, post_fuse

from facefuse.fusion import mesh
from facefuse.fusion.fuse import FuseOptions, fuse_prepared, prepare_template
from facefuse.media.decode import decode_image
from facefuse.media.encode import encode_jpeg
from facefuse.service import FuseJob, FuseService, UserPhoto, fuse_user
from facefuse.settings import Settings
from facefuse.vision.detect import detect_faces
from facefuse.vision.faces import Face
from facefuse.vision.hands import find_hands, held_mask

sys.path.insert(0, str(REPO / "benchmarks"))
import cutouts  # noqa: E402

USER = "deepface__img2.jpg"
TEMPLATE = "face_recognition__examples_obama.jpg"
OTHER_USER = "deepface__img5.jpg"
KINDS = ("hand", "microphone")
DARKER = 0.6  # the same hand in a shadow: what a carried hand shows as a change


def photo(name: str) -> np.ndarray:
    return decode_image(face(name).read_bytes())


def largest(rgb: np.ndarray) -> Face:
    return max(detect_faces(rgb), key=lambda f: f.size)


def eyes(found: Face) -> np.ndarray:
    """The outer eye corners, image left then right (FaceMesh's 33, 263)."""
    return found.points[[33, 263]]


def darker(kind: str) -> np.ndarray:
    cut = cutouts.load(kind).copy()
    cut[..., :3] = np.round(cut[..., :3] * DARKER).astype(np.uint8)
    return cut


def lstar(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[..., 0]


def oval(shape: tuple[int, ...], found: Face) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(found.points[list(mesh.FACE_OVAL)]).astype(np.int32)], 1)
    return mask > 0


def change(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean |dL*| of two results over `region`."""
    return float(np.abs(lstar(a) - lstar(b))[region].mean())


def opaque_interior(shape: tuple[int, ...], at: np.ndarray, kind: str, inset: int = 2) -> np.ndarray:
    """Where the pasted cut-out is wholly opaque, `inset` px in from its edge."""
    _, alpha = cutouts.coverage(shape, at, kind, cutouts.load(kind))
    kernel = np.ones((2 * inset + 1, 2 * inset + 1), np.uint8)
    return cv2.erode((alpha >= 0.99).astype(np.uint8), kernel) > 0


@pytest.fixture(scope="module")
def user() -> tuple[np.ndarray, Face]:
    rgb = photo(USER)
    return rgb, largest(rgb)


@pytest.fixture(scope="module")
def template() -> tuple[np.ndarray, Face]:
    rgb = photo(TEMPLATE)
    return rgb, largest(rgb)


# ------------------------------------------------------------------ finding them


@pytest.mark.parametrize("kind", KINDS)
def test_the_hand_model_covers_a_hand_over_the_face(user, kind: str) -> None:
    rgb, found = user
    covered = cutouts.paste(rgb, eyes(found), kind)
    x, y, side, _ = found.box
    box = (int(x), int(y), int(x + side), int(y + side))
    mask = held_mask(covered, largest(covered), box, (box[3] - box[1], box[2] - box[0]))
    assert mask is not None
    truth = opaque_interior(rgb.shape, eyes(found), kind)[box[1] : box[3], box[0] : box[2]]
    assert truth.sum() > 0.1 * side * side  # the cut-out does lie over the face
    assert (mask[truth] > 0.5).mean() > 0.9  # the hand (and the microphone in it) is covered
    assert (mask > 0.5).sum() < 1.8 * truth.sum()  # not much more than the hand, its edge and shadow


def test_no_hand_no_mask(user) -> None:
    rgb, found = user
    x, y, side, _ = found.box
    box = (int(x), int(y), int(x + side), int(y + side))
    assert find_hands(rgb, found) == []
    assert held_mask(rgb, found, box, (64, 64)) is None


def test_a_plain_face_is_not_given_to_the_hand_model(user, template) -> None:
    """The hand model costs more than the rest of the user's side: a face without a hand
    reads symmetric and is not given to it; one with a hand is."""
    prepared = prepare_template(*template)
    asked: list[bool] = []

    def finder(rgb: np.ndarray, found: Face, box: tuple[int, int, int, int], shape: tuple[int, int]):
        asked.append(True)
        return held_mask(rgb, found, box, shape)

    rgb, found = user
    fuse_prepared(prepared, rgb, found, FuseOptions(), lambda box, shape: finder(rgb, found, box, shape))
    assert asked == []
    covered = cutouts.paste(rgb, eyes(found), "hand")
    on_it = largest(covered)
    fuse_prepared(prepared, covered, on_it, FuseOptions(), lambda box, shape: finder(covered, on_it, box, shape))
    assert asked == [True]


# ------------------------------------------------------------------ the user's side


@pytest.mark.parametrize("kind", KINDS)
def test_a_users_hand_is_not_carried_over(user, template, kind: str) -> None:
    """The user's own landmarks for both photos, so that only what fusion does with the hand
    differs: the result is the same whatever the hand looks like, where a carried hand
    changes it over the face."""
    rgb, found = user
    prepared = prepare_template(*template)
    region = oval(template[0].shape, template[1])
    results, carried = [], []
    for cut in (cutouts.load(kind), darker(kind)):
        covered = cutouts.paste(rgb, eyes(found), kind, cut)
        results.append(fuse_user(prepared, covered, found, FuseOptions()))
        carried.append(fuse_prepared(prepared, covered, found, FuseOptions()))  # no hand model asked
    kept = change(*results, region)
    shown = change(*carried, region)
    assert shown > 1.5  # a carried hand shows (the template's light evens out some of its shade)
    assert kept < 0.5 * shown


def test_what_the_mirror_image_cannot_fill_under_a_hand_is_the_templates_own_face(
    user, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Angelina (a hand from her jaw to her mouth's corner) into the darker deepface img30:
    the template's skin filled in her tone and relit with her face came out as a pale patch
    from the cheek to the jaw. Where the mirror image cannot fill, the result is the
    template's own face (its warped copy, the alpha's zero there)."""
    from facefuse.fusion import blend, hands, pipeline
    from facefuse.fusion.canvas import Canvas

    shows: list[tuple[Canvas, np.ndarray | None]] = []
    blended: list[tuple[np.ndarray, np.ndarray]] = []
    real_shows, real_blend = hands.template_shows, blend.blend_rows

    def seen_shows(canvas, plan, held):  # watches, changes nothing
        weight = real_shows(canvas, plan, held)
        shows.append((canvas, weight))
        return weight

    def seen_blend(out, face, template_face, *rest):
        real_blend(out, face, template_face, *rest)
        blended.append((out, template_face))

    monkeypatch.setattr(pipeline.hands, "template_shows", seen_shows)
    monkeypatch.setattr(pipeline.blend, "blend_rows", seen_blend)
    rgb, found = user
    covered = cutouts.paste(rgb, eyes(found), "hand")
    darker_template = photo("deepface__img30.jpg")
    fuse_user(prepare_template(darker_template, largest(darker_template)), covered, found, FuseOptions())

    (canvas, weight), (fused, warped) = shows[-1], blended[-1]
    assert weight is not None
    core = canvas.grow(weight) > 0.99
    assert core.sum() > 0.01 * core.size  # the hand hides some of the face no mirror image reaches
    difference = np.abs(fused.astype(np.int16) - warped.astype(np.int16))[core]
    assert np.percentile(difference, 99) <= 2


# ------------------------------------------------------------------ the template's side


@pytest.mark.parametrize("kind", KINDS)
def test_a_templates_hand_stays_as_it_is(template, kind: str) -> None:
    t_rgb, t_face = template
    covered = cutouts.paste(t_rgb, eyes(t_face), kind)
    service = FuseService(Settings(demo_template=False, max_image_bytes=64 << 20))
    job = FuseJob(users=[UserPhoto(cutouts.png_bytes(photo(OTHER_USER)))], template_photo=cutouts.png_bytes(covered))
    result = service.fuse(job)
    kept = opaque_interior(t_rgb.shape, eyes(t_face), kind) & oval(t_rgb.shape, t_face)
    assert kept.sum() > 0.05 * t_face.size**2
    same = (result == covered).all(axis=2)
    assert same[kept].mean() > 0.99  # the hand's own pixels, untouched
    # ...while the face around it is the user's: it changed.
    around = oval(t_rgb.shape, t_face) & ~cv2.dilate(kept.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
    assert change(result, covered, around) > 3.0


# ------------------------------------------------------------------ through the server


def jpeg_b64(rgb: np.ndarray) -> str:
    return base64.b64encode(encode_jpeg(rgb, 95)).decode()


def result_of(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = base64.b64decode(response.json()["media_info_list"][0]["media_data"])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_a_registered_templates_microphone_stays_in_front(server: RunningServer, template) -> None:
    t_rgb, t_face = template
    covered = decode_image(encode_jpeg(cutouts.paste(t_rgb, eyes(t_face), "microphone"), 95))
    with server.client() as client:
        created = client.post(
            "/v3/templates",
            params=server.auth,
            json={
                "media_info_list": [{"media_data": jpeg_b64(covered), "media_profiles": {"media_data_type": "jpg"}}],
                "parameter": {"template_id": "handsmicrophone01", "name": "a microphone"},
            },
        )
        assert created.status_code == 200, created.text
    result = result_of(post_fuse(server, fuse_body(jpeg_b64(photo(OTHER_USER)), template="handsmicrophone01")))
    kept = opaque_interior(t_rgb.shape, eyes(t_face), "microphone") & oval(t_rgb.shape, t_face)
    moved = np.abs(lstar(result) - lstar(covered))[kept]
    assert (moved > 8).mean() < 0.02  # as it was, within the JPEG's own noise
    assert change(result, covered, oval(t_rgb.shape, t_face) & ~kept) > 3.0  # the face is the user's


def test_a_users_hand_does_not_come_through_the_server(server: RunningServer, user, template) -> None:
    """The whole service, detection included: the result hardly depends on what the hand
    looks like, far less than a result that carries the hand over does."""
    rgb, found = user
    prepared = prepare_template(*template)
    region = oval(template[0].shape, template[1])
    registered = _registered(server)
    served, carried = [], []
    for cut in (cutouts.load("hand"), darker("hand")):
        covered = cutouts.paste(rgb, eyes(found), "hand", cut)
        served.append(result_of(post_fuse(server, fuse_body(jpeg_b64(covered), template=registered))))
        carried.append(fuse_prepared(prepared, covered, largest(covered), FuseOptions()))
    assert change(*served, region) < 0.6 * change(*carried, region)


def _registered(server: RunningServer) -> str:
    """The template registered once on the server (the same photo as `template`)."""
    with server.client() as client:
        if client.get("/v3/templates/handsplaintemplate", params=server.auth).status_code != 200:
            created = client.post(
                "/v3/templates",
                params=server.auth,
                json={
                    "media_info_list": [
                        {
                            "media_data": base64.b64encode(face(TEMPLATE).read_bytes()).decode(),
                            "media_profiles": {"media_data_type": "jpg"},
                        }
                    ],
                    "parameter": {"template_id": "handsplaintemplate", "name": "plain"},
                },
            )
            assert created.status_code == 200, created.text
    return "handsplaintemplate"


def test_cutouts_are_bundled() -> None:
    for kind in KINDS:
        cut = cutouts.load(kind)
        assert cut.shape[2] == 4 and (cut[..., 3] == 255).mean() > 0.2 and (cut[..., 3] == 0).mean() > 0.2
    assert Path(cutouts.FIXTURES / "LICENSES.md").is_file()


def test_the_templates_skin_under_a_hand_takes_the_tone_of_the_face_beside_it(user) -> None:
    """What a hand covers and its mirror image cannot fill comes from the template's skin, in
    the tone of the user's face right beside it, the mirror image's fill among it: a tone
    read only on the skin further off leaves a patch of another tone beside the fill (a
    pale patch by the mouth when the cheek around it is in shade)."""
    from facefuse.fusion.canvas import Canvas
    from facefuse.fusion.hands import fill_from_template, template_shows
    from facefuse.fusion.occluders import FillPlan

    _, found = user
    x, y, side, _ = found.box
    origin = np.array([x - 0.2 * side, y - 0.2 * side], np.float32)
    shape = (int(1.4 * side), int(1.4 * side))
    canvas = Canvas(shape, found.size, found.points - origin)
    centre, size = canvas.points.mean(axis=0), canvas.size
    rows = np.arange(canvas.shape[0])[:, None] - centre[1]
    cols = np.arange(canvas.shape[1])[None, :] - centre[0]
    on_cheek = (rows > 0.05 * size) & (rows < 0.25 * size)
    held = (on_cheek & (cols > -0.4 * size) & (cols < -0.22 * size)).astype(np.float32)
    beside = (on_cheek & (cols >= -0.22 * size) & (cols < -0.12 * size)).astype(np.float32)
    assert (beside * canvas.skin_area()).sum() > 20  # the fill beside it is plain skin
    plan = FillPlan(from_mirror=beside, from_around=held, mirror_gain=np.ones((*canvas.shape, 3), np.float32))
    far_tone, near_tone = np.array([190, 150, 130], np.float32), np.array([120, 85, 70], np.float32)
    u_face = np.empty((*shape, 3), np.uint8)
    u_face[:] = far_tone
    u_face[canvas.grow(beside) > 0.5] = near_tone
    template_face = np.full((*shape, 3), (210, 180, 160), np.uint8)
    shows = template_shows(canvas, plan, held)
    assert shows is not None
    filled = fill_from_template(canvas, u_face, shows, template_face, canvas.shrink(template_face))
    next_to = (canvas.grow(held) > 0.99) & (canvas.grow(cv2.dilate(beside, np.ones((5, 5), np.uint8))) > 0.5)
    tone = filled[next_to].astype(np.float32).mean(axis=0)
    # Measured: 0.46 of the way from the near tone to the far one (1.01 with the tone read
    # on the skin beyond the mirror image's fill only).
    assert np.linalg.norm(tone - near_tone) < 0.7 * np.linalg.norm(far_tone - near_tone)

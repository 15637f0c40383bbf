"""Face fusion: a user's face into a template face, pure functions on numpy arrays.

fuse.py       the API: FuseOptions, fuse_face, prepare_template / fuse_prepared
pipeline.py   fill_face: the steps in order, and which of them run on a spare core
template.py   a template face prepared once: region, landmarks, warp ring, skin, what stays in front
glasses/      a template's glasses: told and traced once, their frames put back unwarped on top
              (bridge.py: told by their bridge; rims.py, bands.py: each rim; parts.py: bridge, arms)
placement.py  the user's face region, its alignment, the fused landmarks, the boxes, the warps
skin.py       what of each warped face is skin, on the canvas
occluders.py  what covers the user's face (strands, frames) or its photo shows edge-on, filled
inpaint.py    thin dark lines inpainted from the skin beside them, never into the eyes
hands.py      a hand (or a microphone in it) over the user's face: asked for, then filled
in_front.py   a template's hands and what they hold: found once, put back unwarped on top
alpha.py      how much of the user shows at each pixel
directional.py the user's sideways light taken off its face, on the mesh's normals
light.py      the template's light and tone on the user's skin
detail.py     the template's sharpness and grain on the fused face
blend.py      the fused face over the template; the template's glasses' frames in front
geometry.py   the fused landmarks: the template's, moved toward the user's proportions
mesh.py       the 478-point mesh: landmark groups, triangles, mirror pairs, normals, hole fans, ring
warp.py       piecewise-affine warps computed on a coarse grid
canvas.py     the shrunk copy of the face where masks and light are worked out
masks.py      soft masks from landmark polygons
tone.py       skin colour model, shading gain, the user's skin in the template's light, grayscale
beard.py      a template's beard: told once per template, kept from the jaw inward
"""

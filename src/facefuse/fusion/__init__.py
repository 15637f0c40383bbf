"""Face fusion: a user's face into a template face, pure functions on numpy arrays.

fuse.py     the API: FuseOptions, fuse_face, prepare_template / fuse_prepared; the steps in order
geometry.py target landmarks: the template's, moved toward the user's proportions
mesh.py     the 478-point mesh: landmark groups, triangles, hole fans, outer ring
warp.py     piecewise-affine warps computed on a coarse grid
canvas.py   the shrunk copy of the face where masks and light are worked out
masks.py    soft masks from landmark polygons
tone.py     skin colour model, shading gain, the user's skin in the template's light, grayscale
detail.py   the template's sharpness and grain on the fused face
beard.py    a template's beard: told once per template, kept from the jaw inward
"""

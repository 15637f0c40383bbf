"""Face fusion: a user's face into a template face, pure functions on numpy arrays.

fuse.py     the API: FuseOptions, fuse_face, prepare_template / fuse_prepared
geometry.py target landmarks: the template's, moved toward the user's proportions
mesh.py     the 478-point mesh: landmark groups, triangles, hole fans, outer ring
warp.py     piecewise-affine warps computed on a coarse grid
masks.py    soft masks from landmark polygons
tone.py     skin colour model, shading gain, grain and grayscale
"""

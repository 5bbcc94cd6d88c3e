"""The architecture the shipped weights are trained with, sized for CPU training on cached features.

Against the paper's defaults (``OscarConfig()``): the backbones stay frozen at their ImageNet weights (so the CNN
outputs can be cached once per image, and the shipped file holds only the head); at most 8 objects (72 relation
tokens instead of 272); 2-layer, 4-head transformers over narrower tokens (160-wide nodes, 352-wide relations);
FG pooled by attention over its 7x7 cells. Detection, masks and crop sizes are the inference defaults.
"""

from __future__ import annotations

from hasher.config import OscarConfig

RECIPE = OscarConfig(max_objects=8, layers=2, heads=4, d_visual=128, d_shape=16, d_geom=16, d_rel=32, d_ff=256,
                     d_fuse=256, global_pool="attention", d_global=256)

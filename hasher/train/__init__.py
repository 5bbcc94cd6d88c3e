"""Training OSCAR-Net (paper §3.4-3.5) on CPU: ``python -m hasher.train features|fit|export``.

Choice for a 2-core machine: the detector, GrabCut and both CNNs stay frozen (ImageNet / COCO weights), so their
outputs are computed once per training image and cached (``features``); the head (FG pooling, FO, FR, Ed, Eb) trains
on the cache in minutes per thousand steps (``fit``); ``export`` writes the head as safetensors with its config and
calibrated threshold. ``hasher.train.recipe.RECIPE`` is the architecture; ``docs``: hasher/weights/MODEL_CARD.md.

On a GPU, ``end_to_end`` trains the head together with the CNNs' last stages from cached scene graphs instead
(``scripts/gpu-train-oscar.sh``), and exports head + tuned stages as ``oscar-net-head/2``.
"""

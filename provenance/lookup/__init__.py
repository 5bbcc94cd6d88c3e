"""Lookup: from a journalist's image to candidate records, and per candidate, same scene? changed?

Image analysis (pure functions over arrays, no I/O):

- ``features``  — RootSIFT keypoints of an image and their compact, versioned blob (stored beside each record).
- ``geometry``  — geometric verification of a query against a reference (homography or fundamental, MAGSAC++),
  mirrored queries included; defines the coordinate convention every module here uses.
- ``compare``   — aligned comparison of a verified pair: benign re-share changes neutralised, edits localised.
- ``changemap`` — the PNG change map shown to the user.
- ``errors``    — this package's errors (all ``ProvenanceError``).

These modules need OpenCV (the ``hasher`` or ``bench`` extra), so this package imports none of them eagerly.
"""

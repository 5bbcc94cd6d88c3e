"""Attribution benchmark (OSCAR-Net paper §4.2, Benchmarks I and II) with classical perceptual-hash baselines.

Modules: ``dataset`` (the on-disk format), ``metrics`` (pure ranking/pair metrics), ``methods`` (hash registry),
``cache`` (SQLite hash cache), ``make_dataset`` (+ ``transforms``, ``manipulations``) to build a dataset from photos,
``distractors`` (extra distractor codes), ``runner`` and ``report`` (results.json / results.md / plots), ``cli``.
"""

"""Helpers of the evaluate stage (:mod:`music2video.evaluate`), one file per kind of measurement.

* :mod:`~music2video.metrics.frames` — one decoding pass over a video at reduced size that
  yields per-frame change and motion curves (and keeps any frames asked for),
* :mod:`~music2video.metrics.cuts` — hard-cut detection on those curves,
* :mod:`~music2video.metrics.sync` — how the picture follows the music: cut-on-beat rates,
  Beat Alignment Score, AV-Align, visual tempo,
* :mod:`~music2video.metrics.semantic` — CLIP and CLAP similarities of shots to their text
  (optional: needs torch and transformers).
"""

"""A human-evaluation kit: the user study of the research behind music2video, on any videos.

- ``design.py``: ``study.json`` (videos under blinded names, conditions, dimensions, scale,
  design) and the counterbalanced presentation orders; the presets in ``data/study/``
  (``default``, and ``automv``: AutoMV's 12 criteria with their published means).
- ``store.py``: the answers, an SQLite database committed one video at a time.
- ``server.py`` + ``static/``: the page participants use (``music2video study serve``).
- ``stats.py``: rank tests with effect sizes, Holm, bootstrap intervals, Krippendorff's alpha.
- ``results.py``: the analysis, plots, HTML page and CSV (``music2video study results``).
- ``prescreen.py``: a vision-language model's scores on the same criteria, a first look that is
  not a substitute for people (``music2video study prescreen``).
"""

# The commands' defaults live here, not in server.py / prescreen.py, so that building the CLI
# (every `music2video` start) does not import numpy, the run folder and the study modules.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766  # beside the studio (8765), so both can run
DEFAULT_PRESCREEN_MODEL = "HuggingFaceTB/SmolVLM-Instruct"
DEFAULT_PRESCREEN_FRAMES = 8

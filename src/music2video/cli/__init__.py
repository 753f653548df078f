"""The ``music2video`` command line: parse flags, then call the function library users call.

Modules:

- ``app.py``: the Typer app, its callback (``--verbose`` and logging, once, for every command)
  and :func:`main`, the console script, which turns every error into one line.
- ``flags.py``: every flag of the commands that run the pipeline, each declared once.
- ``run_commands.py``: ``make``, ``analyze``, ``storyboard``, ``render``, ``assemble`` and
  ``demo-song``; each hands the flags it was given, by name, to
  :func:`music2video.pipeline.make_video`.
- ``evaluate_commands.py``: ``evaluate`` and ``report``. ``export_commands.py``: ``export``.
- ``show.py``: the console, progress bars and tables. ``logs.py``: logging set-up.

Adding a flag to the pipeline commands is one entry in ``FLAGS`` in ``flags.py``::

    Flag("bpm", float, "Tempo to use instead of the detected one.", MUSIC, stage="structure",
         to=("grid.bpm",), metavar="BPM"),

- ``name`` is the Python name; the flag is ``--bpm`` (underscores become dashes).
- ``to`` says where the value goes, by name: dotted paths of :class:`~music2video.settings.Settings`
  fields (``"grid.bpm"``, several for one value: ``--device``), or a keyword of ``make_video``
  (``"overwrite"``). Left out, it is the Settings field or keyword named like the flag. The
  settings field (or keyword) must exist first: add it to ``settings.py`` or ``make_video``.
- ``stage`` is the first stage that reads the value: every command that runs that stage offers
  the flag (``analyze`` stops after ``shots``, ``storyboard`` after ``write`` ...).
- ``panel`` groups it in ``--help`` (panels show in the order of ``PANELS``); the default
  shown there comes from ``Settings`` unless ``default_text`` says it in words. A ``bool``
  flag is a switch (``--wait``); ``parse`` turns one value into several (``--resolution``).
- A value pydantic refuses is reported as a usage error naming the flag (exit code 2).

A flag not given is not passed on, so the config file and ``MUSIC2VIDEO_*`` variables apply.
Flags that only change what the CLI prints (``--dry-run``) are parameters of their command.
"""

from music2video.cli.app import app, main

__all__ = ["app", "main"]

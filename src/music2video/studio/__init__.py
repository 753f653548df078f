"""``music2video studio``: a local web app over the same Python API and the same run folders.

    from music2video.studio import serve
    serve(Path("~/videos").expanduser())        # http://127.0.0.1:8765/

Open or start a run (upload a song or pick one in the work folder), watch each stage and shot
progress (and cancel), see the timeline (waveform, beats, downbeats, sections, cuts, a
thumbnail per shot), edit cuts and shots, re-render shots, play the video and download it.

Modules: ``server.py`` (the FastAPI routes and :func:`serve`), ``safety.py`` (paths stay in
the work folder, upload names, host and token checks), ``jobs.py`` (long work in child
processes with progress and cancel), ``runs.py`` (what the page reads from run folders), and
``static/`` (the page: plain HTML, CSS and JavaScript, no build step, nothing fetched from
elsewhere).

Needs the ``web`` extra: ``pip install 'music2video[web]'``.
"""

__all__ = ["create_app", "serve"]


def __getattr__(name: str):
    # Lazy: ``music2video.studio.safety`` is imported by the study server and, through it, by the
    # CLI at start-up; importing the FastAPI server here made every command fail without the web extra.
    if name in __all__:
        from music2video.studio import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Storyboard writers: from the song's structure and a listener's descriptions to ``storyboard.json``.

Every writer returns the same :class:`~music2video.artifacts.Storyboard` (one concept, a style
bible, recurring characters, one treatment per section and one shot per planned shot, with the
shot plan's ids and times copied exactly):

* ``template`` (:mod:`music2video.write.template`): deterministic, offline, no model.
* ``llm``: a language model writes the treatment under a JSON schema.
"""

from music2video.write.template import write_template_storyboard

__all__ = ["write_template_storyboard"]

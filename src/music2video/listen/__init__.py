"""Listeners: what the song sounds like, in numbers and words.

Every listener returns the same :class:`~music2video.artifacts.Descriptions` (one description
for the whole song, one per analysis section, one per planned shot), so the writers never
need to know which one ran:

* ``dsp`` (:mod:`music2video.listen.dsp`): offline signal descriptors and plain words; no model.
* ``clap``: a CLAP model scores each span against label vocabularies.
* ``lalm``: a large audio-language model describes each span in sentences.
"""

from music2video.listen.dsp import describe_dsp

__all__ = ["describe_dsp"]

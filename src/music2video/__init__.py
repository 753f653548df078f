"""music2video: turn any song into a music video."""

__version__ = "0.1.0"

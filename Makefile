# The README's quick start: `make demo`, then `make test`. Both set up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Debian packages: Fashion-MNIST (offline data), fluidsynth + General MIDI soundfont (music demo audio).
APT_PACKAGES := dataset-fashion-mnist fluidsynth fluid-soundfont-gm
DEMO_PHOTO := out/chelsea.png

.PHONY: setup demo test test-slow bench clean

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
	touch $(STAMP)

# Upscale a real photo (scikit-image's Chelsea the cat, held out from training) 2x with the shipped weights.
demo: setup
	@mkdir -p out
	@$(BIN)/python -c "from skimage import data; from PIL import Image; Image.fromarray(data.chelsea()).save('$(DEMO_PHOTO)')"
	$(BIN)/zoo demo upscale $(DEMO_PHOTO) --scale 2 -o out/chelsea_x2.png --force
	@echo "open out/chelsea_x2.png; try: $(BIN)/zoo list"

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) out .pytest_cache

# tollmeter: `make demo` and `make test` set everything up on a fresh machine (Python 3.11+ and make).

PYTHON ?= python3
VENV := .venv
PREV := .venv-prev
# The previous major releases of the provider SDKs, tested in a second pass.
PREV_SDKS := "openai>=2,<3" "anthropic>=1,<2" "groq<1" "mistralai>=2,<3" "cohere>=6,<7" "google-genai>=2,<3"

.PHONY: demo test test-current test-previous bench dashboard screenshots chromium clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]"
	touch $@

$(PREV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(PREV)
	$(PREV)/bin/python -m pip install -q --upgrade pip
	$(PREV)/bin/python -m pip install -q -e ".[dev]" $(PREV_SDKS)
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/python -m tollmeter.demo

test: test-current test-previous

test-current: $(VENV)/.installed chromium
	$(VENV)/bin/python -m pytest

# The dashboard's browser tests drive Debian's chromium through Playwright (no browser is ever
# downloaded): installed with apt when missing (as root, or with sudo), else those tests skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else \
	  echo "no chromium and no root: the dashboard's browser tests will be skipped (apt-get install chromium)"; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Second pass: everything that drives a provider SDK, on the previous majors.
test-previous: $(PREV)/.installed
	$(PREV)/bin/python -m pytest -m sdk

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/overhead.py

# The dashboard on a store of sample customers, at http://127.0.0.1:8731/ (Ctrl-C to stop).
dashboard: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/dashboard.py --serve 8731

# docs/img/*.png: the dashboard's views on a seeded store, in headless chromium.
screenshots: $(VENV)/.installed chromium
	$(VENV)/bin/python benchmarks/dashboard.py --screenshots docs/img

clean:
	rm -rf $(VENV) $(PREV) build dist src/*.egg-info

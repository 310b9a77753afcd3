# tollmeter: `make demo` and `make test` set everything up on a fresh machine (Python 3.11+ and make).

PYTHON ?= python3
VENV := .venv
PREV := .venv-prev
# The previous major releases of the provider SDKs, tested in a second pass.
PREV_SDKS := "openai>=2,<3" "anthropic>=1,<2" "groq<1" "mistralai>=2,<3" "cohere>=6,<7" "google-genai>=2,<3"

.PHONY: demo test test-current test-previous bench clean

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

test-current: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

# Second pass: everything that drives a provider SDK, on the previous majors.
test-previous: $(PREV)/.installed
	$(PREV)/bin/python -m pytest -m sdk

bench: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(PREV) build dist src/*.egg-info

# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
VENV        := .venv
PY          := $(VENV)/bin/python
# uv itself is pinned and lives in its own small venv: `uv sync` makes .venv exactly the lock,
# so a uv installed there would be removed by the sync it runs.
UV_VERSION  := 0.13.9
TOOLS       := .venv-tools
UV          := $(TOOLS)/bin/uv
CINEGRAPH   := $(VENV)/bin/cinegraph
STAMP       := $(VENV)/.installed-stamp
MIRROR      ?= $(abspath ../shared/data/mirror)
OUT         ?= out
# Test-only Neo4j: its own data directory, port and password, started and stopped by `make test`.
TEST_NEO4J_HOME     := .neo4j/test
TEST_NEO4J_PORT     ?= 7697
TEST_NEO4J_BROWSER_PORT ?= 7698
TEST_NEO4J_PASSWORD ?= cinegraph-test-password
PYTEST_ARGS ?=

.PHONY: install lock lint demo test neo4j-test-start neo4j-test-stop clean

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Installs exactly what uv.lock pins (the project itself editable); never resolves anew.
$(STAMP): pyproject.toml uv.lock $(UV)
	@$(UV) lock --check --quiet || \
	  { echo "uv.lock is out of date with pyproject.toml: run make lock (uv lock), then make test" >&2; exit 1; }
	$(UV) sync --frozen --quiet --python python3 --extra dev --extra bench
	touch $(STAMP)

install: $(STAMP)

# Re-resolves uv.lock after a change to pyproject.toml; `$(UV) lock --upgrade` moves every pin.
lock: $(UV)
	$(UV) lock

# Lint rules, the formatter's layout and type-checking settings live in pyproject.toml. All three
# run; any failing fails (`ruff format .` fixes the layout).
lint: install
	$(VENV)/bin/ruff check .; ruff=$$?; $(VENV)/bin/ruff format --check .; fmt=$$?; $(VENV)/bin/mypy; mypy=$$?; \
	  exit $$((ruff || fmt || mypy))

demo: install
	$(CINEGRAPH) demo --variant ml-latest-small --out $(OUT) $(if $(wildcard $(MIRROR)),--mirror $(MIRROR),)

neo4j-test-start: install
	NEO4J_PASSWORD=$(TEST_NEO4J_PASSWORD) $(CINEGRAPH) neo4j start --home $(TEST_NEO4J_HOME) --port $(TEST_NEO4J_PORT) \
	  --browser-port $(TEST_NEO4J_BROWSER_PORT)

neo4j-test-stop:
	-$(CINEGRAPH) neo4j stop --home $(TEST_NEO4J_HOME)

test: install
	$(MAKE) neo4j-test-start
	NEO4J_URI=bolt://127.0.0.1:$(TEST_NEO4J_PORT) NEO4J_USER=neo4j NEO4J_PASSWORD=$(TEST_NEO4J_PASSWORD) \
	NEO4J_BROWSER_URL=http://127.0.0.1:$(TEST_NEO4J_BROWSER_PORT) \
	CINEGRAPH_MIRROR=$(MIRROR) $(PY) -m pytest $(PYTEST_ARGS); \
	rc=$$?; $(MAKE) neo4j-test-stop; exit $$rc

clean:
	rm -rf $(VENV) $(TOOLS) .neo4j graph_store/neo4j_server/target out

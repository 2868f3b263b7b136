# Two commands on a fresh machine: `make demo` and `make test`. Both create or reuse .venv.
VENV        := .venv
PY          := $(VENV)/bin/python
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

.PHONY: install demo test neo4j-test-start neo4j-test-stop clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

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
	rm -rf $(VENV) .neo4j graph_store/neo4j_server/target out

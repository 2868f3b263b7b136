"""cinegraph: MovieLens + IMDb knowledge graph, from the dumps to Neo4j and a dual-branch recommender.

The repository keeps one folder per layer at its top (``etl/``, ``graph_store/``, ``models/``,
``flows/``); they are installed, and imported, as ``cinegraph.etl`` and so on, so no generic name is
claimed in site-packages. :mod:`cinegraph.errors` and :mod:`cinegraph.schema` are the neutral core
every layer may import."""

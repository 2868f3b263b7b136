// A movie's neighbourhood: the people linked to it (by any IMDb relationship) and its genres.
// Parameters (paste the :param lines into Neo4j Browser; `cinegraph cypher` uses them as defaults):
// :param movie_id => 912
// :param limit => 100
MATCH (m:Movie {movie_id: $movie_id})
CALL (m) {
  MATCH (p:Person)-[r]->(m)
  RETURN labels(p)[0] AS kind, p.nconst AS key, p.name AS name, type(r) AS relationship
  UNION
  MATCH (m)-[r:IN_GENRE]->(g:Genre)
  RETURN labels(g)[0] AS kind, g.name AS key, g.name AS name, type(r) AS relationship
}
RETURN m.title AS movie, kind, relationship, key, name
ORDER BY kind, relationship, name, key
LIMIT $limit;

// The people connecting two movies: every shortest path between them that runs only through
// people (movie <- person -> movie <- person -> ...), up to four people apart.
// :param movie_a => 912
// :param movie_b => 913
// :param limit => 25
MATCH (a:Movie {movie_id: $movie_a}), (b:Movie {movie_id: $movie_b})
WHERE a <> b
MATCH path = allShortestPaths(
  (a)-[:ACTED_IN|DIRECTED|WROTE|PRODUCED|COMPOSED|EDITED|PHOTOGRAPHED|WORKED_ON|KNOWN_FOR*..8]-(b)
)
RETURN length(path) / 2 AS hops,
       [n IN nodes(path) WHERE n:Person | n.name] AS people,
       [n IN nodes(path) WHERE n:Movie | n.title] AS movies,
       [r IN relationships(path) | type(r)] AS relationships,
       path
ORDER BY people
LIMIT $limit;

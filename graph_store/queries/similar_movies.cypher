// Movies whose fused embeddings (written by a training run) are nearest to a movie's, by cosine
// similarity over the vector index.
// :param movie_id => 1
// :param k => 10
MATCH (m:Movie {movie_id: $movie_id})
WHERE m.embedding IS NOT NULL
CALL db.index.vector.queryNodes('movie_embedding', $k + 1, m.embedding) YIELD node, score
WITH node, score
WHERE node.movie_id <> $movie_id
RETURN node.movie_id AS movie_id, node.title AS title, node.year AS year, score
ORDER BY score DESC, movie_id
LIMIT $k;

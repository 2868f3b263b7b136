// Users who rated this movie highly also rated highly: other movies ranked by how many of those
// users gave them at least min_rating.
// :param movie_id => 1
// :param min_rating => 4.0
// :param limit => 10
MATCH (m:Movie {movie_id: $movie_id})<-[liked:RATED]-(u:User)
WHERE liked.rating >= $min_rating
MATCH (u)-[r:RATED]->(other:Movie)
WHERE other <> m AND r.rating >= $min_rating
RETURN other.movie_id AS movie_id, other.title AS title, other.year AS year,
       count(DISTINCT u) AS users, avg(r.rating) AS avg_rating
ORDER BY users DESC, avg_rating DESC, movie_id
LIMIT $limit;

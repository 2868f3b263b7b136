// Why was each movie recommended? For each of the user's RECOMMENDED edges (best ranks first; one
// movie, or all when movie_id is null; one training run, or any when run_id is null), up to
// `paths` paths user -> a movie they rated highly -> a shared person or genre -> the recommended
// movie. People come before genres, higher ratings first.
// :param user_id => 1
// :param movie_id => null
// :param run_id => null
// :param min_rating => 4.0
// :param movies => 10
// :param paths => 3
MATCH (u:User {user_id: $user_id})-[rec:RECOMMENDED]->(target:Movie)
WHERE ($movie_id IS NULL OR target.movie_id = $movie_id)
  AND ($run_id IS NULL OR rec.run_id = $run_id)
WITH u, rec, target
ORDER BY rec.run_id, rec.rank
LIMIT $movies
CALL (u, target) {
  MATCH path = (u)-[r:RATED]->(liked:Movie)
               -[:IN_GENRE|ACTED_IN|DIRECTED|WROTE|PRODUCED|COMPOSED|EDITED|PHOTOGRAPHED|WORKED_ON|KNOWN_FOR]-
               (shared)
               -[:IN_GENRE|ACTED_IN|DIRECTED|WROTE|PRODUCED|COMPOSED|EDITED|PHOTOGRAPHED|WORKED_ON|KNOWN_FOR]-
               (target)
  WHERE r.rating >= $min_rating AND liked <> target AND (shared:Person OR shared:Genre)
  RETURN liked, r, shared, path
  ORDER BY CASE WHEN shared:Person THEN 0 ELSE 1 END, r.rating DESC, liked.title,
           coalesce(shared.name, shared.nconst)
  LIMIT $paths
}
RETURN rec.run_id AS run_id, rec.rank AS rank, target.movie_id AS movie_id,
       target.title AS recommended, liked.title AS because_you_liked, r.rating AS your_rating,
       labels(shared)[0] AS via, coalesce(shared.name, shared.nconst) AS through, path
ORDER BY run_id, rank, CASE WHEN via = 'Person' THEN 0 ELSE 1 END, your_rating DESC,
         because_you_liked, through;

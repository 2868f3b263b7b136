// Why was a movie recommended? Paths user -> a movie they rated highly -> a shared person or
// genre -> the recommended movie, for the user's RECOMMENDED edges (one movie, or all when
// movie_id is null; one training run, or any when run_id is null). People come before genres.
// :param user_id => 1
// :param movie_id => null
// :param run_id => null
// :param min_rating => 4.0
// :param limit => 25
MATCH (u:User {user_id: $user_id})-[rec:RECOMMENDED]->(target:Movie)
WHERE ($movie_id IS NULL OR target.movie_id = $movie_id)
  AND ($run_id IS NULL OR rec.run_id = $run_id)
MATCH path = (u)-[r:RATED]->(liked:Movie)
             -[:IN_GENRE|ACTED_IN|DIRECTED|WROTE|PRODUCED|COMPOSED|EDITED|PHOTOGRAPHED|WORKED_ON|KNOWN_FOR]-
             (shared)
             -[:IN_GENRE|ACTED_IN|DIRECTED|WROTE|PRODUCED|COMPOSED|EDITED|PHOTOGRAPHED|WORKED_ON|KNOWN_FOR]-
             (target)
WHERE r.rating >= $min_rating AND liked <> target AND (shared:Person OR shared:Genre)
RETURN rec.run_id AS run_id, rec.rank AS rank, target.movie_id AS movie_id,
       target.title AS recommended, liked.title AS because_you_liked, r.rating AS your_rating,
       labels(shared)[0] AS via, coalesce(shared.name, shared.nconst) AS through, path
ORDER BY run_id, rank, CASE WHEN shared:Person THEN 0 ELSE 1 END, your_rating DESC,
         because_you_liked, through
LIMIT $limit;

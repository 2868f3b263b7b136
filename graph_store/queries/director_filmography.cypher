// A director's filmography with the average MovieLens rating of each film. `director` is an IMDb
// nconst (nm0000033) or an exact name (Alfred Hitchcock).
// :param director => "Alfred Hitchcock"
MATCH (p:Person)-[:DIRECTED]->(m:Movie)
WHERE p.nconst = $director OR p.name = $director
OPTIONAL MATCH (:User)-[r:RATED]->(m)
RETURN p.nconst AS nconst, p.name AS director, m.movie_id AS movie_id, m.title AS title,
       m.year AS year, count(r) AS ratings, avg(r.rating) AS avg_rating
ORDER BY nconst, year, title, movie_id;

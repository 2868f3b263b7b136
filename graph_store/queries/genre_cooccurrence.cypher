// The genre pairs that occur together on the most movies.
// :param limit => 20
MATCH (a:Genre)<-[:IN_GENRE]-(m:Movie)-[:IN_GENRE]->(b:Genre)
WHERE a.name < b.name
RETURN a.name AS genre_a, b.name AS genre_b, count(m) AS movies
ORDER BY movies DESC, genre_a, genre_b
LIMIT $limit;

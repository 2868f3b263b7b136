// Movies by title, through the full-text index over the MovieLens and IMDb titles: exact titles
// first, then the best matches. The other queries take the movie_id it returns (`cinegraph
// cypher` also accepts a title wherever a query takes a movie id, and looks it up here).
// :param title => "Casablanca"
// :param limit => 10
CALL db.index.fulltext.queryNodes('movie_title_search', '"' + replace(replace($title, '\\', ' '), '"', ' ') + '"')
YIELD node, score
WHERE node:Movie
RETURN node.movie_id AS movie_id, node.title AS title, node.year AS year,
       node.imdb_title AS imdb_title, score
ORDER BY toLower(node.title) = toLower(trim($title)) OR toLower(node.imdb_title) = toLower(trim($title)) DESC,
         score DESC, movie_id
LIMIT $limit;

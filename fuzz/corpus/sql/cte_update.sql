WITH recent AS (SELECT id FROM notes ORDER BY id DESC LIMIT 10)
UPDATE notes SET title = $1 WHERE id IN (SELECT id FROM recent) RETURNING id, title

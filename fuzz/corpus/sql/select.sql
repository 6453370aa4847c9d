SELECT * FROM notes WHERE id = ? AND title = 'x' -- hi

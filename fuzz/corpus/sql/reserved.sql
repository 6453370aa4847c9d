SELECT * FROM main.notes JOIN temp.t ON t.id = notes.id; DELETE FROM "_trellis_migrations"

-- Removes version 2 of the pgml_kit runtime schema (the queue). Fails while a queue-mode trigger
-- still uses the tables.
DROP TABLE pgml_kit.backfill_checkpoints;
DROP TABLE pgml_kit.embedding_dead_letters;
DROP TABLE pgml_kit.embedding_jobs;
UPDATE pgml_kit.runtime_version SET version = 1, installed_at = now();
ALTER TABLE pgml_kit.embedding_columns DROP COLUMN key_columns;

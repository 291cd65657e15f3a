-- Removes the pgml_kit runtime schema, version 1. Fails (and changes nothing) if anything else
-- was put in the schema.
DROP TABLE pgml_kit.embedding_columns;
DROP TABLE pgml_kit.runtime_version;
DROP SCHEMA pgml_kit;

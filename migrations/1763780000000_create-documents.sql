-- Hand-written base migration: the table the config adds embeddings to.
-- Up Migration
CREATE TABLE documents (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL,
  department text,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE documents;

import type { PgmlKitConfig } from '../../src/config/schema.js'

/** Dimensions of the pgml.embed test double below. */
export const DOUBLE_DIMENSIONS = 8

/**
 * TEST DOUBLE for pgml.embed — not a model. A deterministic pseudo-embedding (bytes of an md5 of
 * model id and text), with pgml's signature and volatility, so trigger and generated-column wiring
 * can be tested on databases without pgml. The real in-database path is pgml_compat's, tested
 * on the server tier.
 */
export const PGML_EMBED_TEST_DOUBLE = `
CREATE SCHEMA IF NOT EXISTS pgml;
CREATE FUNCTION pgml.embed(transformer text, "text" text, kwargs jsonb DEFAULT '{}')
RETURNS real[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array_agg(get_byte(decode(md5(transformer || ':' || "text"), 'hex'), i)::real / 255 ORDER BY i)
  FROM generate_series(0, ${DOUBLE_DIMENSIONS - 1}) AS i
$$;`

export const DOCUMENTS_TABLE = `
-- Up Migration
CREATE TABLE documents (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  title text,
  body text,
  department text
);
-- Down Migration
DROP TABLE documents;
`

export function documentsConfig(embedding: Partial<PgmlKitConfig['tables'][string]['embeddings'][string]> = {}, extra: Partial<PgmlKitConfig> = {}): PgmlKitConfig {
  return {
    ...extra,
    tables: {
      documents: {
        embeddings: {
          body_embedding: {
            source: ['title', 'body'],
            model: { id: 'test/double', dimensions: DOUBLE_DIMENSIONS },
            mode: 'app',
            indexes: [{ method: 'hnsw', distance: 'cosine' }],
            ...embedding,
          },
        },
      },
    },
  }
}

import { defineConfig } from 'pgml-kit'

export default defineConfig({
  tables: {
    documents: {
      embeddings: {
        // One vector per row, computed from the title and body joined by a blank line.
        body_embedding: {
          source: ['title', 'body'],
          // A preset: 384 dimensions, "passage: " / "query: " prefixes, normalised vectors.
          model: 'intfloat/e5-small-v2',
          // "app": your application writes the vectors; works on any PostgreSQL with pgvector,
          // including the embedded default. On a server with pgml or pgml_compat, "trigger"
          // computes them inside the database on every write.
          mode: 'app',
          indexes: [{ method: 'hnsw', distance: 'cosine', m: 16, efConstruction: 64 }],
        },
      },
    },
  },
})

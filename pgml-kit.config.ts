import { defineConfig } from 'pgml-kit'

export default defineConfig({
  tables: {
    documents: {
      embeddings: {
        // One vector per row, computed from the title and body joined by a blank line.
        body_embedding: {
          source: ['title', 'body'],
          // The model pgml-kit ships: 128 dimensions from WordNet, offline, no prefixes. In an app
          // that may download models, name a larger one such as 'intfloat/e5-small-v2'.
          model: 'pgml-kit/wordnet-static-128',
          // "queue": a trigger queues every write, `pgml-kit worker` embeds it with the local model.
          // Works on any PostgreSQL with pgvector, including the embedded default. On a server with
          // pgml or pgml_compat, "trigger" computes vectors inside the database instead.
          mode: 'queue',
          indexes: [{ method: 'hnsw', distance: 'cosine', m: 16, efConstruction: 64 }],
        },
      },
    },
  },
})

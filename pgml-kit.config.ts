import { defineConfig } from 'pgml-kit'

export default defineConfig({
  // The example runs offline: its model is a small generated fixture (scripts/generate-fixture-models.py).
  // In an app, name a real model such as 'intfloat/e5-small-v2'; transformers.js downloads its ONNX weights.
  embedder: { modelsDir: 'test/fixtures/models', allowRemoteModels: false },
  tables: {
    documents: {
      embeddings: {
        // One vector per row, computed from the title and body joined by a blank line.
        body_embedding: {
          source: ['title', 'body'],
          model: { id: 'pgml-kit/tiny-bert-16', dimensions: 16, documentPrefix: 'passage: ', queryPrefix: 'query: ' },
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

import { describe, expect, it } from 'vitest'
import { LocalEmbedder } from '../../src/embed/local-embedder.js'
import { toVectorLiteral, embedIsolating, embedForColumn, type Embedder } from '../../src/embed/embedder.js'
import { MODELS_DIR, PoisonEmbedder, TINY_16, TINY_32, cosine, loadTiny } from '../helpers/embedders.js'

describe('LocalEmbedder on the fixture models (offline)', () => {
  it('embeds texts into normalised vectors of the declared dimensions', async () => {
    const embedder = await loadTiny()
    expect(embedder.dimensions).toBe(16)
    expect(embedder.pooling).toBe('mean')
    const [a, b, c] = await embedder.embed(['affordable housing for families', 'affordable housing for families', 'public transit and bike lanes'])
    expect(a).toHaveLength(16)
    expect(Math.hypot(...a!)).toBeCloseTo(1, 5)
    expect(Array.from(a!)).toEqual(Array.from(b!))
    expect(cosine(a!, c!)).toBeLessThan(0.999)
  })

  it('gives the same vector for a text alone or in a padded batch of any size', async () => {
    const texts = ['a', 'a much longer text about the city budget and its parks and libraries', 'housing', 'taxes', 'x y z']
    const batched = await (await loadTiny(TINY_16, 2)).embed(texts)
    const single = await (await loadTiny(TINY_16, 1)).embed(texts)
    for (let i = 0; i < texts.length; i++) {
      expect(cosine(batched[i]!, single[i]!)).toBeGreaterThan(0.99999)
    }
  })

  it('applies the document and query prefixes', async () => {
    const embedder = await loadTiny()
    const [document] = await embedder.embed(['parks'], { as: 'document' })
    const [query] = await embedder.embed(['parks'], { as: 'query' })
    const [literalQuery] = await (await LocalEmbedder.load({ model: { ...TINY_16, documentPrefix: '' }, modelsDir: MODELS_DIR })).embed(['query: parks'])
    expect(cosine(document!, query!)).toBeLessThan(0.9999)
    expect(cosine(query!, literalQuery!)).toBeGreaterThan(0.99999)
  })

  it('reads CLS pooling from the model files and honours an explicit pooling', async () => {
    const cls = await loadTiny(TINY_32)
    expect(cls.pooling).toBe('cls')
    expect(cls.dimensions).toBe(32)
    const mean = await LocalEmbedder.load({ model: { ...TINY_32, pooling: 'mean' }, modelsDir: MODELS_DIR })
    const [x] = await cls.embed(['library hours'])
    const [y] = await mean.embed(['library hours'])
    expect(cosine(x!, y!)).toBeLessThan(0.999)
  })

  it('refuses a model whose output dimension differs from the column', async () => {
    const error = await LocalEmbedder.load({ model: { ...TINY_16, dimensions: 384 }, modelsDir: MODELS_DIR }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'MODEL_DIMENSIONS_MISMATCH' })
    expect((error as Error).message).toMatch(/produces 16-dimensional vectors, but the column is declared with 384/)
  })

  it('says where it looked for a model it cannot find, offline', async () => {
    const error = await LocalEmbedder.load({ model: { ...TINY_16, id: 'nobody/missing-model' }, modelsDir: MODELS_DIR }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'MODEL_LOAD_FAILED' })
    expect((error as Error).message).toContain('nobody/missing-model')
    expect((error as { hint: string }).hint).toMatch(/modelsDir/)
  })

  it('isolates a failing text in a batch', async () => {
    const results = await embedIsolating(new PoisonEmbedder(await loadTiny()), ['good', 'POISON pill', 'also good'])
    expect(results[0]).toBeInstanceOf(Float32Array)
    expect(results[1]).toBeInstanceOf(Error)
    expect(results[2]).toBeInstanceOf(Float32Array)
  })

  it('embeds a batch for a column: NULL text stays NULL, and a failing text, a NaN or the wrong dimensions fail alone', async () => {
    const tiny = await loadTiny()
    // TEST DOUBLE around the real model: a NaN for texts containing "NAN".
    const nan: Embedder = { modelId: tiny.modelId, dimensions: tiny.dimensions, embed: async (texts) => (await tiny.embed(texts)).map((v, i) => (texts[i]!.includes('NAN') ? v.map((x, j) => (j === 2 ? Number.NaN : x)) : v)) }
    const out = await embedForColumn(new PoisonEmbedder(nan), ['good', null, 'POISON pill', 'NAN here', 'also good'], 16)
    expect(out.map((v) => (v === null ? 'null' : v instanceof Error ? v.message.slice(0, 30) : v.length))).toEqual([16, 'null', expect.any(String), 'vector component 2 is NaN; pgv', 16])
    expect(out[2]).toBeInstanceOf(Error)
    expect(out[4]).toEqual((await tiny.embed(['also good']))[0])
    expect((await embedForColumn(tiny, ['good'], 32))[0]).toEqual(new Error('model returned 16 dimensions, column has 32'))
  })

  it('serialises vectors for pgvector and refuses non-finite values', () => {
    expect(toVectorLiteral(new Float32Array([0.5, -1, 0]))).toBe('[0.5,-1,0]')
    expect(() => toVectorLiteral([1, Number.NaN])).toThrow(/finite/)
  })
})

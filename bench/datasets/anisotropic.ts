/**
 * The harder dataset of the search issue, with a fixed seed: 200 anisotropic clusters of Zipf-like
 * sizes in a 64-dimensional subspace of the 384-dimensional space, plus noise in every dimension.
 * Points are drawn the way traffic arrives (a cluster in proportion to its size, a point of it);
 * queries drawn after the rows are not in the table. Used by bench/index-advice.ts and
 * bench/filtered-search.ts.
 */

export const DIMS = 384
export const SUBSPACE = 64
export const CLUSTERS = 200
const NOISE = 0.05

/** mulberry32: a small seeded generator; normal() by Box–Muller. */
export function generator(seed: number) {
  let a = seed >>> 0
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())
  return { uniform, normal }
}

/** The dataset drawn from `seed`: `point()` gives the next point (float32 values). */
export function anisotropicDataset(seed = 20261206) {
  const rng = generator(seed)
  // The subspace: 64 random directions of the 384-dimensional space.
  const basis = Array.from({ length: SUBSPACE }, () => Float64Array.from({ length: DIMS }, () => rng.normal() / Math.sqrt(DIMS)))
  // Clusters: a centre, and a spread of its own in each of the 64 directions (log-uniform, 0.05–1): anisotropic.
  const clusters = Array.from({ length: CLUSTERS }, () => ({
    centre: Float64Array.from({ length: SUBSPACE }, () => rng.normal()),
    spread: Float64Array.from({ length: SUBSPACE }, () => Math.exp(Math.log(0.05) + rng.uniform() * Math.log(20))),
  }))
  // Zipf-like sizes: cluster c holds a share ∝ 1 / (c + 1).
  const weights = clusters.map((_, c) => 1 / (c + 1))
  const total = weights.reduce((a, b) => a + b, 0)
  const cumulative = weights.map((_, c) => weights.slice(0, c + 1).reduce((a, b) => a + b, 0) / total)

  function point(): number[] {
    const u = rng.uniform()
    const c = clusters[cumulative.findIndex((x) => u <= x)] ?? clusters[CLUSTERS - 1]!
    const inSubspace = Array.from({ length: SUBSPACE }, (_, j) => c.centre[j]! + rng.normal() * c.spread[j]!)
    const v = new Array<number>(DIMS).fill(0)
    for (let j = 0; j < SUBSPACE; j++) {
      const w = inSubspace[j]!
      const b = basis[j]!
      for (let d = 0; d < DIMS; d++) v[d] = v[d]! + w * b[d]!
    }
    return v.map((x) => Math.fround(x + rng.normal() * NOISE))
  }
  return { point, uniform: rng.uniform }
}

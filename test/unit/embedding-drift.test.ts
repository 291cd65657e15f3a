import { describe, expect, it } from 'vitest'
import { chiSquareTail, compareWithBaseline, summarise } from '../../src/features/embedding-drift.js'
import { generator as rng } from '../../bench/datasets/anisotropic.js'

/** n vectors of d dimensions around `mean`, far from isotropic (standard deviations 1, 1/2, 1/3, ...), as embeddings are. */
function sample(n: number, d: number, seed: number, mean: readonly number[] = []): number[][] {
  const r = rng(seed)
  return Array.from({ length: n }, () => Array.from({ length: d }, (_, i) => (mean[i] ?? 0) + r.normal() / (i + 1)))
}

describe('embedding drift statistics', () => {
  it('computes χ² tails close to the exact values', () => {
    // Exact: P(χ²_1 > 3.841) = 0.05, P(χ²_10 > 23.209) = 0.01, P(χ²_100 > 124.342) = 0.05.
    expect(chiSquareTail(3.841, 1)).toBeGreaterThan(0.03)
    expect(chiSquareTail(3.841, 1)).toBeLessThan(0.07)
    expect(chiSquareTail(23.209, 10)).toBeCloseTo(0.01, 2)
    expect(chiSquareTail(124.342, 100)).toBeCloseTo(0.05, 2)
    expect(chiSquareTail(0, 5)).toBe(1)
  })

  it('holds its false-alarm rate on independent samples of one distribution, and finds a small mean shift (held-out seeds)', () => {
    const d = 24
    const n = 200
    const alpha = 0.01
    let falseAlarms = 0
    let found = 0
    const trials = 60
    for (let t = 0; t < trials; t++) {
      const base = summarise(sample(n, d, 1000 + t), 'l2')
      const same = compareWithBaseline(base, sample(n, d, 5000 + t))
      if (same.p < alpha / 2 || (same.nn && same.nn.p < alpha / 2)) falseAlarms++
      // A shift of half the widest direction's standard deviation (at a third, the permutation test
      // finds about two in three: the power of 200 rows against 24 dimensions).
      const moved = compareWithBaseline(base, sample(n, d, 9000 + t, [0.5]))
      if (moved.p < alpha / 2) found++
    }
    // Two tests at alpha/2 each: about 1% expected; 3 in 60 would be far above it.
    expect(falseAlarms).toBeLessThanOrEqual(2)
    expect(found / trials).toBeGreaterThan(0.8)
  })

  it('sees content that sits apart from the rest in the nearest-neighbour distances, and compares cosine columns on unit vectors', () => {
    const base = summarise(sample(300, 16, 1), 'cosine')
    expect(base.centroid.reduce((s, x) => s + x * x, 0)).toBeLessThan(1)
    // A third of the vectors scaled up 10×: the same directions, so cosine sees no change at all.
    const scaled = sample(300, 16, 2).map((v, i) => (i % 3 === 0 ? v.map((x) => 10 * x) : v))
    const cosine = compareWithBaseline(base, scaled)
    expect(cosine.p).toBeGreaterThan(0.005)
    // Under l2 the scaled third sits far from everything: neighbours alarm.
    const l2 = compareWithBaseline(summarise(sample(300, 16, 1), 'l2'), scaled)
    expect(l2.nn!.p).toBeLessThan(1e-6)
  })
})

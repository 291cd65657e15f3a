import { describe, expect, it } from 'vitest'
import { ks, proportionsDiffer, psi } from '../../src/features/monitor.js'
import { renderDriftSample } from '../../src/sql/render-registry.js'
import { parseStatements } from '../helpers/sql.js'

/** A seeded generator (mulberry32), so the figures below are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const normal = (r: () => number, n: number, shift = 0) => Array.from({ length: n }, () => shift + Array.from({ length: 12 }, r).reduce((a, b) => a + b, 0) - 6)

describe('drift statistics', () => {
  it('KS: D and the p-value of two samples of one distribution, and of a shifted one', () => {
    expect(ks([1, 2, 3], [1, 2, 3])).toEqual({ d: 0, p: 1 })
    expect(ks([1, 2, 3, 4], [5, 6, 7, 8]).d).toBe(1)
    // Ties: D is taken after every value equal to the step, so identical multisets give 0.
    expect(ks([1, 1, 2, 2], [2, 1, 2, 1]).d).toBe(0)
    // Under no drift p is uniform: over 200 pairs of samples about 1% fall below 0.01.
    const r = rng(7)
    const below = Array.from({ length: 200 }, () => ks(normal(r, 300), normal(r, 300)).p).filter((p) => p < 0.01).length
    expect(below).toBeLessThanOrEqual(8)
    const shifted = ks(normal(r, 1000), normal(r, 1000, 0.3))
    expect(shifted.p).toBeLessThan(1e-6)
    expect(shifted.d).toBeGreaterThan(0.08)
  })

  it('PSI: near 0 without drift, above 0.2 for a one-sd shift, finite with empty bins, one bin per value of a flag', () => {
    const r = rng(11)
    expect(psi(normal(r, 1000), normal(r, 1000))).toBeLessThan(0.05)
    expect(psi(normal(r, 1000), normal(r, 1000, 1))).toBeGreaterThan(0.2)
    const allHigh = psi([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [100, 100, 100])
    expect(Number.isFinite(allHigh)).toBe(true)
    expect(allHigh).toBeGreaterThan(1)
    expect(psi([], [1])).toBeNaN()
    // A rare flag that becomes common: deciles would all collapse to 0 and see nothing.
    const flag = (share: number, n: number) => Array.from({ length: n }, (_, i) => (i < share * n ? 1 : 0))
    expect(psi(flag(0.05, 1000), flag(0.5, 1000))).toBeGreaterThan(0.5)
    expect(psi(flag(0.05, 1000), flag(0.05, 1000))).toBeLessThan(1e-9)
  })

  it('NULL shares: the two-proportion test', () => {
    expect(proportionsDiffer(0, 1000, 1, 1000, 0.01)).toBe(true)
    expect(proportionsDiffer(0.1, 1000, 0.12, 1000, 0.01)).toBe(false)
    expect(proportionsDiffer(0.1, 1000, 0.2, 1000, 0.01)).toBe(true)
    expect(proportionsDiffer(0, 1000, 0, 1000, 0.01)).toBe(false)
  })

  it('renders a sample statement that parses, with every name quoted', () => {
    const sql = renderDriftSample(`"public"."odd ""t"""`, ['x"1', 'select'], { predict: true })
    expect(sql).toContain('t."x""1"::double precision AS c0')
    expect(sql).toContain('pgml.predict($1::bigint, ARRAY[t."x""1", t."select"]::real[])')
    expect(parseStatements(sql)).toBe(1)
  })
})

describe('drift statistics on values that cannot be ordered', () => {
  it('leaves NaN out of KS and PSI instead of looping forever or calling it drift', () => {
    const base = Array.from({ length: 300 }, (_, i) => i % 50)
    const withNaN = [...base, Number.NaN, Number.NaN]
    expect(ks(base, withNaN)).toEqual(ks(base, base))
    expect(psi(base, withNaN)).toBeCloseTo(psi(base, base), 10)
    expect(ks([1, 2, 3], [2, Number.NaN]).d).toBeGreaterThanOrEqual(0)
    expect(Number.isNaN(ks([Number.NaN], [1]).p)).toBe(true)
  })
})

import { describe, expect, it } from 'vitest'
import { ITERATIVE_COST_PER_INVERSE_SELECTIVITY, QueryVector, effectiveSettings, exactIsCheaper, filteredEfSearch } from '../../src/query/query-vector.js'
import { renderExactSearch } from '../../src/sql/render-search.js'
import { parseStatements } from '../helpers/sql.js'

describe('the filtered-search rule', () => {
  it('scans exactly when the planner\'s cost of the exact scan is below the iterative scan\'s, which grows as 1 / selectivity', () => {
    // bench/filtered-search.ts's table: 100,000 rows; with a B-tree on the filter column the exact scan costs ~3,000 at 1 %, ~380 at 0.1 %, ~17,000 at 10 %.
    const n = 100_000
    expect(exactIsCheaper({ exactCost: 2892, matches: 860, tableRows: n })).toBe(true)
    expect(exactIsCheaper({ exactCost: 384, matches: 99, tableRows: n })).toBe(true)
    expect(exactIsCheaper({ exactCost: 17313, matches: 10015, tableRows: n })).toBe(false)
    // Without one, the exact scan reads the whole table (~21,000): worth it only for the most selective filters.
    expect(exactIsCheaper({ exactCost: 21252, matches: 99, tableRows: n })).toBe(true)
    expect(exactIsCheaper({ exactCost: 21266, matches: 860, tableRows: n })).toBe(false)
    // The boundary is the constant's.
    expect(exactIsCheaper({ exactCost: ITERATIVE_COST_PER_INVERSE_SELECTIVITY * 10, matches: 100, tableRows: 1000 })).toBe(true)
    expect(exactIsCheaper({ exactCost: ITERATIVE_COST_PER_INVERSE_SELECTIVITY * 10 + 1, matches: 100, tableRows: 1000 })).toBe(false)
    // A table never analysed (reltuples −1) or an unreadable cost: the index, as before.
    expect(exactIsCheaper({ exactCost: 10, matches: 1, tableRows: -1 })).toBe(false)
    expect(exactIsCheaper({ exactCost: Number.NaN, matches: 1, tableRows: 1000 })).toBe(false)
  })

  it('raises ef_search for a filtered iterative scan with the filter\'s selectivity, never past 1000', () => {
    expect(filteredEfSearch(40, 0.1)).toBe(80)
    expect(filteredEfSearch(40, 0.01)).toBe(120)
    expect(filteredEfSearch(40, 1)).toBe(40)
    expect(filteredEfSearch(40, 0)).toBe(40)
    expect(filteredEfSearch(600, 0.001)).toBe(1000)
  })

  it('renders the exact form as valid PostgreSQL, its limit the search\'s own parameter', () => {
    const text = renderExactSearch('select "id", ("t"."e" <=> $1::vector(3)) as "distance", ("t"."e" <=> $1::vector(3)) as "pgml_kit_distance" from "t" where "x" = $2', 3)
    expect(text).toBe('SELECT * FROM (select "id", ("t"."e" <=> $1::vector(3)) as "distance", ("t"."e" <=> $1::vector(3)) as "pgml_kit_distance" from "t" where "x" = $2 OFFSET 0) AS pgml_kit_exact WHERE "pgml_kit_distance" IS NOT NULL ORDER BY "pgml_kit_distance" LIMIT $3')
    expect(parseStatements(text)).toBe(1)
    expect(() => renderExactSearch('select 1', 0)).toThrow(RangeError)
    expect(() => renderExactSearch('select 1', 1.5)).toThrow(RangeError)
  })
})

describe('ef_search for a filtered iterative scan', () => {
  const column = { table: 'documents', column: 'e', schema: 'public' } as unknown as ConstructorParameters<typeof QueryVector>[0]
  const marker = (efSearch: number | null) => new QueryVector(column, [1, 0], {}, { method: 'hnsw', efSearch, probes: null })
  it('starts from the config\'s, else the session\'s, and never lowers the session\'s own default unless the config says so', () => {
    expect(effectiveSettings(marker(null), true, null, 0.1, 400).efSearch).toBe(800)
    expect(effectiveSettings(marker(null), true, null, 1, 400).efSearch).toBe(400)
    expect(effectiveSettings(marker(null), true, null, 0.1, null).efSearch).toBe(80)
    expect(effectiveSettings(marker(40), true, null, 0.1, 400).efSearch).toBe(80)
    expect(effectiveSettings(marker(null), false, null, 0.1, 400).efSearch).toBeUndefined()
  })
})

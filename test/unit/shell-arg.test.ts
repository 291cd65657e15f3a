import { execFileSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { shellArg } from '../../src/shell.js'

describe('shellArg', () => {
  it('prints a hint\'s value as one shell word that the shell reads back as the value', () => {
    expect(shellArg('churn')).toBe('churn')
    expect(shellArg('house price\'s')).toBe(`'house price'\\''s'`)
    for (const value of ['house price\'s', 'a b', '$(rm -rf ~)', '`x`', 'new\nline', '"q"', '*', 'café', '--flag']) {
      // What sh makes of it: exactly the value, one argument.
      const out = execFileSync('sh', ['-c', `printf '%s' ${shellArg(value)}`], { encoding: 'utf8' })
      expect(out).toBe(value)
    }
  })
})

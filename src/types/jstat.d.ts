/** The part of jstat (no types of its own) that pgml-kit uses: the beta distribution's quantile. */
declare module 'jstat' {
  const jstat: {
    readonly jStat: {
      readonly beta: {
        /** The p-quantile of Beta(a, b). */
        inv(p: number, a: number, b: number): number
      }
    }
  }
  export default jstat
}

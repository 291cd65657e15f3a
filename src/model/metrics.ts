/**
 * The metrics pgml records for a trained model (`pgml.models.metrics`), per task: what a deployment
 * gate may compare. PostgresML and pgml_compat store the same keys (pgml_compat's `_metrics`;
 * README: pgml_compat). `fit_time` and `score_time` are recorded too, but say nothing about quality.
 */
export const PGML_METRICS = {
  regression: ['r2', 'mean_absolute_error', 'mean_squared_error'],
  classification: ['f1', 'precision', 'recall', 'accuracy', 'mcc', 'roc_auc', 'log_loss'],
} as const satisfies Readonly<Record<'regression' | 'classification', readonly string[]>>

/** Errors and losses: a smaller value is a better model. Every other metric above is higher-is-better. */
const LOWER_IS_BETTER: ReadonlySet<string> = new Set(['mean_absolute_error', 'mean_squared_error', 'log_loss'])

export function isLowerBetter(metric: string): boolean {
  return LOWER_IS_BETTER.has(metric)
}

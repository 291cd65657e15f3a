/** Says once, for the whole run, whether the server tier runs and why not. */
export default function setup(): void {
  if (!process.env.PGML_KIT_TEST_DATABASE_URL) {
    process.stderr.write('\n[pgml-kit tests] server tier skipped: PGML_KIT_TEST_DATABASE_URL is not set (scripts/provision-postgres.sh prints it). Pure and embedded tiers run.\n\n')
  }
}

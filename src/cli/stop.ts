/**
 * How every long-running command stops: the first SIGINT (Ctrl-C) or SIGTERM (a service manager,
 * `docker stop`) asks it to finish what it is doing — `message` says what that means — and a
 * second one quits at once (exit status 130). `dispose` removes the handlers.
 */
export function onStop(message?: string): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController()
  const stop = () => {
    if (!controller.signal.aborted) {
      if (message) process.stderr.write(`${message}\n`)
      controller.abort()
    } else process.exit(130)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
    },
  }
}

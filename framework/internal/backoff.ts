/** Delay before retry `attempt` (0-based): exponential from `baseMs`, capped, with half of it jittered. */
export function backoffDelay(attempt: number, baseMs = 200, maxMs = 5_000): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30))
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2))
}

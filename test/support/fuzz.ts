/** Seeded fuzz input shared by the bad-input tests: the same values on every run. */

/** A small seeded generator (mulberry32): the fuzz inputs are the same on every run. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A random JSON value: wrong types, nesting up to `depth`, long strings, odd numbers. */
export function randomValue(random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * (depth > 0 ? 9 : 6))
  switch (pick) {
    case 0:
      return null
    case 1:
      return random() < 0.5
    case 2:
      return [0, -1, 1e308, -0, 2 ** 53 + 1, 3.14][Math.floor(random() * 6)]
    case 3:
      return 'x'.repeat(Math.floor(random() * 300))
    case 4:
      return '\u0000\ud800<script>'.slice(0, Math.floor(random() * 14))
    case 5:
      return ''
    case 6:
      return Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth - 1))
    default: {
      const keys = ['key', 'value', '__proto__', 'constructor', 'k'.repeat(40)]
      return Object.fromEntries(
        keys
          .filter(() => random() < 0.5)
          .map((key) => [key, randomValue(random, depth - 1)] as const),
      )
    }
  }
}

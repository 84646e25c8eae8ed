/**
 * Rendezvous (highest random weight) hashing: a key goes to the instance whose
 * `score(key, instance)` is highest. When one of N instances leaves, only the keys it held move
 * (each to its next-highest instance); when one joins, it takes ~1/N of the keys from the others.
 * Scores are murmur3's 32-bit finalizer over FNV-1a hashes of the key and the instance id:
 * cheap (no allocation per call) and well mixed (see bench/hash-balance.ts for the spread).
 */

/** FNV-1a over the string's UTF-16 code units, then mixed: a 32-bit hash of `text`. */
export function hashString(text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return mix(hash)
}

/** murmur3's fmix32: every input bit affects every output bit. */
function mix(value: number): number {
  let h = value ^ (value >>> 16)
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The weight of an instance (by the hash of its id) for a key (by its hash). */
export function score(keyHash: number, instanceHash: number): number {
  return mix(keyHash ^ instanceHash)
}

/** The item that rendezvous hashing gives the key (undefined when there are none). */
export function rendezvous<T>(
  keyHash: number,
  items: readonly T[],
  hashOf: (item: T) => number,
): T | undefined {
  let best: T | undefined
  let bestScore = -1
  for (const item of items) {
    const weight = score(keyHash, hashOf(item))
    if (weight > bestScore) {
      best = item
      bestScore = weight
    }
  }
  return best
}

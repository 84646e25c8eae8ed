import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RetryBudget } from '../../framework/client/retry-budget.js'

/** Withdraws until refused (bounded); returns how many were granted. */
function drain(budget: RetryBudget, max = 1_000): number {
  let granted = 0
  while (granted < max && budget.withdraw()) granted++
  return granted
}

describe('RetryBudget', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(new Date('2025-01-01T00:00:00Z'))
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('starts with minPerSecond tokens', () => {
    expect(drain(new RetryBudget())).toBe(10)
    expect(drain(new RetryBudget(0.2, 3))).toBe(3)
    expect(drain(new RetryBudget(0.2, 0))).toBe(0)
  })

  it('refuses once drained while the clock stands still', () => {
    const budget = new RetryBudget()
    drain(budget)
    expect(budget.withdraw()).toBe(false)
    expect(budget.withdraw()).toBe(false)
  })

  it('turns about 20% of calls into retries', () => {
    const budget = new RetryBudget()
    drain(budget)
    for (let i = 0; i < 100; i++) budget.deposit()
    const granted = drain(budget)
    // 100 × 0.2 = 20, give or take floating point rounding
    expect(granted).toBeGreaterThanOrEqual(19)
    expect(granted).toBeLessThanOrEqual(20)
  })

  it('grants a retry only once deposits add up to a whole token', () => {
    const budget = new RetryBudget(0.25, 0)
    for (let i = 0; i < 3; i++) budget.deposit()
    expect(budget.withdraw()).toBe(false)
    budget.deposit()
    expect(budget.withdraw()).toBe(true)
    expect(budget.withdraw()).toBe(false)
  })

  it('refills minPerSecond tokens per second', () => {
    const budget = new RetryBudget()
    drain(budget)
    vi.advanceTimersByTime(500)
    expect(drain(budget)).toBe(5)
    vi.advanceTimersByTime(1_000)
    expect(drain(budget)).toBe(10)
    vi.setSystemTime(Date.now() + 200)
    expect(drain(budget)).toBe(2)
  })

  it('never holds more than its capacity', () => {
    const budget = new RetryBudget(0.2, 10, 30)
    for (let i = 0; i < 1_000; i++) budget.deposit()
    vi.advanceTimersByTime(60_000)
    expect(drain(budget)).toBe(30)
  })

  it('caps deposits at capacity too', () => {
    const budget = new RetryBudget(1, 0, 7)
    for (let i = 0; i < 100; i++) budget.deposit()
    expect(drain(budget)).toBe(7)
  })
})

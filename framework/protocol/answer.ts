/**
 * One answer, as a line of newline-delimited JSON: `[id, status, body]`, status and body as
 * tRPC's HTTP answer to that call. The stream answers a call frame's id with it; a batch answers
 * each call's index in the batch.
 */
export type Answer = [id: number, status: number, body: unknown]

/** The line for an answer whose body is already JSON text (a template: this is the hot path). */
export function encodeAnswer(id: number, status: number, bodyJson: string): string {
  return `[${id},${status},${bodyJson}]\n`
}

/** An answer line (without its newline), or what is wrong with it. */
export function parseAnswer(
  line: string,
): Answer | 'a frame that is not JSON' | 'a malformed frame' {
  let answer: unknown
  try {
    answer = JSON.parse(line)
  } catch {
    return 'a frame that is not JSON'
  }
  if (!Array.isArray(answer) || typeof answer[0] !== 'number' || typeof answer[1] !== 'number') {
    return 'a malformed frame'
  }
  return answer as Answer
}

/** Output helpers: plain aligned tables, and color only when writing to a terminal. */

export interface Styler {
  bold(text: string): string
  dim(text: string): string
  color(code: number, text: string): string
}

export function styler(stream: { isTTY?: boolean }): Styler {
  const on = stream.isTTY === true && !process.env.NO_COLOR
  const wrap = (code: number, text: string) => (on ? `\u001b[${code}m${text}\u001b[0m` : text)
  return { bold: (text) => wrap(1, text), dim: (text) => wrap(2, text), color: wrap }
}

/** Columns padded to their widest cell; no borders, like `rails routes`. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)),
  )
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

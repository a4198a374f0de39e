/** Side-by-side text columns for the demo: pure layout, no I/O. */

export interface Column {
  title: string;
  lines: string[];
}

/** Terminal cells of one character: emoji and other wide symbols take two. */
function cells(char: string): number {
  const code = char.codePointAt(0)!;
  return code >= 0x1f300 && code <= 0x1faff ? 2 : 1;
}

export function displayWidth(text: string): number {
  let width = 0;
  for (const char of text) width += cells(char);
  return width;
}

/** Wraps a line to `width` cells, breaking at spaces when possible. */
export function wrap(line: string, width: number): string[] {
  if (displayWidth(line) <= width) return [line];
  const out: string[] = [];
  let rest = [...line];
  while (displayWidth(rest.join("")) > width) {
    let fit = 0;
    for (let used = 0; fit < rest.length && used + cells(rest[fit]!) <= width; fit++) {
      used += cells(rest[fit]!);
    }
    let cut = rest.lastIndexOf(" ", fit);
    if (cut <= 0) cut = Math.max(1, fit);
    out.push(rest.slice(0, cut).join("").trimEnd());
    rest = rest.slice(rest[cut] === " " ? cut + 1 : cut);
  }
  if (rest.length > 0) out.push(rest.join(""));
  return out;
}

function pad(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - displayWidth(text)));
}

/** Columns of equal width separated by " │ ", titles underlined. */
export function sideBySide(columns: readonly Column[], totalWidth: number): string[] {
  const gap = 3;
  const width = Math.max(
    12,
    Math.floor((totalWidth - gap * (columns.length - 1)) / columns.length),
  );
  const bodies = columns.map((column) => [
    ...wrap(column.title, width),
    "─".repeat(width),
    ...column.lines.flatMap((line) => wrap(line, width)),
  ]);
  const height = Math.max(...bodies.map((body) => body.length));
  const rows: string[] = [];
  for (let i = 0; i < height; i++) {
    rows.push(bodies.map((body) => pad(body[i] ?? "", width)).join(" │ ").trimEnd());
  }
  return rows;
}

/** Reads the totals from `deno test` output ("ok | 12 passed (3 steps) | 0 failed (2s)"). */
const ANSI_COLOR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

export function parseDenoTestSummary(output: string): { passed: number; failed: number } | null {
  const plain = output.replace(ANSI_COLOR, "");
  const matches = [...plain.matchAll(/(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed/g)];
  const last = matches.at(-1);
  if (!last) return null;
  return { passed: Number(last[1]), failed: Number(last[2]) };
}

/** The name of the last test that started and has no result yet ("name ..." with nothing after). */
export function lastStartedTest(output: string): string | undefined {
  const plain = output.replace(ANSI_COLOR, "");
  const started = [...plain.matchAll(/^(.+?) \.\.\.(.*)$/gm)];
  for (const match of started.toReversed()) {
    if (!/\b(ok|FAILED|ignored)\b/.test(match[2] ?? "")) return match[1]!.trim();
  }
  return started.at(-1)?.[1]?.trim();
}

// deno-lint-ignore-file no-console -- load scripts report to the terminal
/** A server under load as a child process: its output lines, CPU time and memory (Linux). */

import { sleep } from "../support/wait.ts";

export interface Child {
  pid: number;
  line(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(): Promise<void>;
  /** Resident memory of the child in bytes (Linux /proc). */
  rss(): Promise<number>;
  /** CPU time the child used so far (user + system), in seconds (Linux /proc). */
  cpuSeconds(): Promise<number>;
}

/** CPU time this process used so far (user + system), in seconds (Linux /proc). */
export async function ownCpuSeconds(): Promise<number> {
  return cpuSecondsOf(await Deno.readTextFile("/proc/self/stat"));
}

export function cpuSecondsOf(stat: string): number {
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function spawn(argv: string[], env: Record<string, string>): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: argv,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let errors = "";
  const decoder = new TextDecoder();
  let killed = false;
  void process.status.then((status) => {
    if (!killed) {
      console.error(`child ${argv.at(-1)} exited with ${status.code}:\n${errors.slice(-2000)}`);
    }
  });
  void (async () => {
    for await (const chunk of process.stdout) output += decoder.decode(chunk);
  })();
  void (async () => {
    for await (const chunk of process.stderr) {
      errors = (errors + decoder.decode(chunk)).slice(-10_000);
    }
  })();
  return {
    pid: process.pid,
    async line(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = output.match(pattern);
        if (match) return match;
        if (Date.now() > deadline) {
          throw new Error(`child did not print ${pattern}: ${output}\n${errors.slice(-3000)}`);
        }
        await sleep(20);
      }
    },
    async kill() {
      killed = true;
      try {
        process.kill("SIGKILL");
      } catch { /* already gone */ }
      await process.status;
    },
    async cpuSeconds() {
      return cpuSecondsOf(await Deno.readTextFile(`/proc/${process.pid}/stat`));
    },
    async rss() {
      const status = await Deno.readTextFile(`/proc/${process.pid}/status`);
      const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
      return kb * 1024;
    },
  };
}

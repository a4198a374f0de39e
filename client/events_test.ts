import { assertEquals } from "../tests/assert.ts";
import { Listeners } from "./events.ts";

Deno.test("events: a listener that throws goes to the error hook, and the others still run", () => {
  const failures: Array<[string, number]> = [];
  const seen: number[] = [];
  const listeners = new Listeners<number>((error, event) =>
    failures.push([(error as Error).message, event])
  );
  listeners.on(() => {
    throw new Error("broken app listener");
  });
  listeners.on((event) => seen.push(event));
  listeners.emit(7);
  assertEquals(seen, [7]);
  assertEquals(failures, [["broken app listener", 7]]);
});

import { assertEquals } from "../tests/assert.ts";
import { Persister } from "./persister.ts";

Deno.test("persister: callers during a write share one follow-up write that sees their changes", async () => {
  let value = 0;
  const written: number[] = [];
  const gates: (() => void)[] = [];
  const persister = new Persister(async () => {
    const snapshot = value;
    await new Promise<void>((resolve) => gates.push(resolve));
    written.push(snapshot);
  });
  value = 1;
  const first = persister.save();
  value = 2;
  const second = persister.save();
  value = 3;
  const third = persister.save();
  gates.shift()!();
  await first;
  await new Promise((resolve) => setTimeout(resolve, 0));
  gates.shift()!();
  await Promise.all([second, third]);
  assertEquals(written, [1, 3]);
  assertEquals(gates.length, 0);
});

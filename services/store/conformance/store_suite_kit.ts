/**
 * The test wrapper every store conformance suite uses: one fresh store per test, closed after
 * it, the test named `<adapter> <area>: <name>`.
 */

import type { Store } from "../ports.ts";

export interface StoreSuiteOptions {
  /** Prefix of every test name, e.g. "sqlite". */
  name: string;
  /** A store to run one test on; the suite closes it at the end of the test. */
  open: () => Promise<Store>;
  /** Passed to Deno.test for adapters whose client keeps timers or sockets beyond close(). */
  sanitize?: boolean;
}

/** Registers `<adapter> <area>: <name>` tests, each on a store of its own. */
export function storeSuiteTest(options: StoreSuiteOptions, area: string) {
  return (name: string, body: (store: Store) => Promise<void>) =>
    Deno.test({
      name: `${options.name} ${area}: ${name}`,
      sanitizeOps: options.sanitize ?? true,
      sanitizeResources: options.sanitize ?? true,
      fn: async () => {
        const store = await options.open();
        try {
          await body(store);
        } finally {
          await store.close();
        }
      },
    });
}

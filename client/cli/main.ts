// deno-lint-ignore-file no-console -- a command-line program: the terminal is its output
/**
 * `deno task chat`: an interactive end-to-end encrypted chat in the terminal, on the SDK.
 *
 *   deno task chat [--profile NAME] [--server HOST:PORT] [--dir PROFILE_DIR] [--tls] [--device-name NAME]
 *
 * Defaults: profile "default", server $GUARDYN_SERVER or 127.0.0.1:8080 (`deno task dev`),
 * profiles in $GUARDYN_PROFILE_DIR or ./.guardyn/profiles. $GUARDYN_PASSPHRASE skips the
 * passphrase prompt (for scripts; it is visible to other local users, so avoid it otherwise).
 */

import { parseArgs } from "node:util";
import { ChatSession } from "./commands.ts";
import { Terminal } from "./terminal.ts";

const USAGE =
  "usage: deno task chat [--profile NAME] [--server HOST:PORT] [--dir PROFILE_DIR] [--tls] [--device-name NAME]";

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        profile: { type: "string", default: "default" },
        server: { type: "string" },
        dir: { type: "string" },
        tls: { type: "boolean", default: false },
        "device-name": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const current: { session?: ChatSession } = {};
  const terminal = new Terminal(() => current.session?.prompt ?? "> ");
  const session = new ChatSession({
    print: (line) => terminal.print(line),
    ask: async (prompt, options) => {
      const line = await terminal.read(prompt, options);
      if (line === undefined) throw new Error("input closed");
      return line;
    },
  }, {
    server: values.server ?? Deno.env.get("GUARDYN_SERVER") ?? "127.0.0.1:8080",
    profileDir: values.dir ?? Deno.env.get("GUARDYN_PROFILE_DIR") ?? "./.guardyn/profiles",
    profile: values.profile,
    passphrase: Deno.env.get("GUARDYN_PASSPHRASE"),
    deviceName: values["device-name"],
    tls: values.tls,
    onEnded: () => setTimeout(() => terminal.close(), 100),
  });
  current.session = session;
  try {
    await session.start();
  } catch (error) {
    terminal.close();
    console.error(`cannot open the profile: ${(error as Error).message}`);
    return 1;
  }
  terminal.onActivity((text) => session.inputChanged(text));
  for (;;) {
    const line = await terminal.read();
    if (line === undefined) break;
    if (!await session.execute(line)) break;
  }
  terminal.close();
  await session.close();
  return 0;
}

Deno.exit(await main());

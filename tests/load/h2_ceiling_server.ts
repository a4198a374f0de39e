// deno-lint-ignore-file no-console -- prints its port for the parent
/**
 * The transport's ceiling for the media load (tests/load/media_load.ts): Deno.serve on
 * loopback that swallows POST bodies and streams `?bytes=N` zero bytes in 1 MiB parts, with no
 * gRPC, store or disk behind it. The load compares the service with it in the same run.
 */
const PART = 1024 * 1024;
Deno.serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen: ({ port }) => console.log(`CEILING http://127.0.0.1:${port}`),
}, async (request) => {
  if (request.method === "POST") {
    let bytes = 0;
    for await (const part of request.body ?? []) bytes += part.length;
    return new Response(String(bytes));
  }
  const total = Math.min(Number(new URL(request.url).searchParams.get("bytes")), 2 ** 31);
  let sent = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= total) return controller.close();
        const part = new Uint8Array(Math.min(PART, total - sent));
        controller.enqueue(part);
        sent += part.length;
      },
    }, { highWaterMark: 2 }),
  );
});

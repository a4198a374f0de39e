/**
 * A throwaway certificate authority and a loopback server certificate it signed, made with
 * openssl (rustls refuses a self-signed leaf). For HTTPS servers in tests.
 */

import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

export async function makeTestCertificates(prefix = "guardyn-ca-"): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix });
  const path = (name: string) => join(dir, name);
  const [certFile, keyFile, caFile] = [path("cert.pem"), path("key.pem"), path("ca.pem")];
  await Deno.writeTextFile(path("leaf.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  const steps = [
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", path("ca.key"), "-out", caFile, "-days", "1", "-subj", "/CN=ca"],
      ...["-addext", "basicConstraints=critical,CA:TRUE"],
      ...["-addext", "keyUsage=critical,keyCertSign"],
    ],
    [
      ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", keyFile, "-out", path("leaf.csr"), "-subj", "/CN=localhost"],
    ],
    [
      ...["x509", "-req", "-in", path("leaf.csr"), "-CA", caFile],
      ...["-CAkey", path("ca.key"), "-CAcreateserial", "-out", certFile, "-days", "1"],
      ...["-extfile", path("leaf.ext")],
    ],
  ];
  for (const args of steps) {
    const made = await new Deno.Command("openssl", { args, stdout: "null", stderr: "piped" })
      .output();
    if (!made.success) throw new Error(`openssl: ${new TextDecoder().decode(made.stderr)}`);
  }
  return { dir, caFile, certFile, keyFile };
}

#!/usr/bin/env bash
# Installs what the test suites need, idempotently: Deno (from npm), nats-server, coturn,
# Prometheus (promtool) and age (Debian),
# a JDK and Maven (Debian) for Apache Cassandra, and Cassandra's jars (Maven Central, cached outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."

DENO_VERSION="2.9.6"

say() { printf 'install: %s\n' "$*" >&2; }

missing_apt=()
command -v nats-server >/dev/null || missing_apt+=(nats-server)
command -v java >/dev/null || missing_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing_apt+=(maven)
command -v h2load >/dev/null || missing_apt+=(nghttp2-client)
command -v nginx >/dev/null || missing_apt+=(nginx-light)
command -v turnserver >/dev/null || missing_apt+=(coturn)
# Prometheus and promtool: the shipped scrape configuration and rules are tested for real.
command -v promtool >/dev/null || missing_apt+=(prometheus)
# age, for the SOPS-encrypted secrets tests.
command -v age >/dev/null || missing_apt+=(age)
# nix-instantiate parses the flake (tasks/flake_test.ts).
command -v nix-instantiate >/dev/null || missing_apt+=(nix-bin)
# openssl makes the test control plane's service account key (tasks/kube_api.ts).
command -v openssl >/dev/null || missing_apt+=(openssl)
if ((${#missing_apt[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    say "missing: ${missing_apt[*]}; install them with apt-get (needs root)"
    exit 1
  fi
  say "apt-get install ${missing_apt[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing_apt[@]}" >/dev/null
fi

if ! command -v deno >/dev/null; then
  say "npm install -g deno@$DENO_VERSION"
  npm install -g --silent "deno@$DENO_VERSION"
fi

bash .ci/cassandra.sh install
bash infra/tools/install.sh # kustomize + kubernetes-validate for the manifest tests (cached)

#!/usr/bin/env bash
# Installs the tools the manifest tests use, idempotently, cached outside the clone:
#   kustomize            renders infra/k8s overlays       (Go module proxy, `go install`)
#   kubernetes-validate  strict schema validation         (PyPI, in its own virtualenv)
#   versitygw            an S3 server for the blob store tests (Go module proxy, `go install`)
#   sops                 encrypts the Secrets kept in git   (Go module proxy, `go install`)
# Cache: ${GUARDYN_CACHE:-$HOME/.cache/guardyn}/{bin,kubernetes-validate}. The tests look there.
set -euo pipefail

KUSTOMIZE_VERSION="v5.7.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
VERSITYGW_VERSION="v1.8.0"
SOPS_VERSION="v3.13.3"

CACHE="${GUARDYN_CACHE:-${HOME:?HOME is not set}/.cache/guardyn}"
say() { printf 'install: %s\n' "$*" >&2; }

mkdir -p "$CACHE/bin"

if [[ "$("$CACHE/bin/kustomize" version 2>/dev/null || true)" != "$KUSTOMIZE_VERSION" ]]; then
  command -v go >/dev/null || { say "go is needed to install kustomize (Debian: golang)"; exit 1; }
  say "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  GOBIN="$CACHE/bin" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

# versitygw prints no version of its own: a marker file says which one was built.
if [[ ! -x "$CACHE/bin/versitygw" || ! -f "$CACHE/bin/.versitygw-$VERSITYGW_VERSION" ]]; then
  command -v go >/dev/null || { say "go is needed to install versitygw (Debian: golang)"; exit 1; }
  say "go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION (one time, about 5 minutes on 2 cores)"
  GOBIN="$CACHE/bin" GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  touch "$CACHE/bin/.versitygw-$VERSITYGW_VERSION"
fi

if [[ "$("$CACHE/bin/sops" --version --disable-version-check 2>/dev/null | head -1 || true)" != "sops ${SOPS_VERSION#v}"* ]]; then
  command -v go >/dev/null || { say "go is needed to install sops (Debian: golang)"; exit 1; }
  say "go install github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION (one time, about 4 minutes on 2 cores)"
  GOBIN="$CACHE/bin" GOFLAGS=-buildvcs=false go install "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION"
fi

venv="$CACHE/kubernetes-validate"
if [[ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null || true)" != *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
  command -v python3 >/dev/null || { say "python3 is needed for kubernetes-validate"; exit 1; }
  say "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
say "kustomize $("$CACHE/bin/kustomize" version), kubernetes-validate $("$venv/bin/kubernetes-validate" --version), versitygw $VERSITYGW_VERSION, sops $SOPS_VERSION"

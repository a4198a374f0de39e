#!/usr/bin/env bash
# Installs the tools the manifest tests use, idempotently, cached outside the clone:
#   kustomize            renders infra/k8s overlays       (Go module proxy, `go install`)
#   kubernetes-validate  strict schema validation         (PyPI, in its own virtualenv)
#   versitygw            an S3 server for the blob store tests (Go module proxy, `go install`)
#   sops                 encrypts the Secrets kept in git   (Go module proxy, `go install`)
#   control plane        etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
#                        (Go module proxy, built from infra/tools/controlplane; tasks/kube_api.ts)
#   kwok                 fake Kubernetes nodes               (Go module proxy, `go install`)
#   cosign, syft         release signatures and SBOMs        (Go module proxy, `go install`)
# Cache: ${GUARDYN_CACHE:-$HOME/.cache/guardyn}/{bin,kubernetes-validate}. The tests look there.
set -euo pipefail

KUSTOMIZE_VERSION="v5.7.1"
KUBERNETES_VALIDATE_VERSION="1.37.0"
VERSITYGW_VERSION="v1.8.0"
SOPS_VERSION="v3.13.3"
COSIGN_VERSION="v2.6.5"
SYFT_VERSION="v1.57.2"

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

# cosign and syft print versions that need network checks; a marker names what was built.
for tool in "cosign github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION 8" \
            "syft github.com/anchore/syft/cmd/syft@$SYFT_VERSION 10"; do
  read -r name module minutes <<<"$tool"
  if [[ ! -x "$CACHE/bin/$name" || ! -f "$CACHE/bin/.$name-${module##*@}" ]]; then
    command -v go >/dev/null || { say "go is needed to install $name (Debian: golang)"; exit 1; }
    say "go install $module (one time, about $minutes minutes on 2 cores)"
    GOBIN="$CACHE/bin" GOFLAGS=-buildvcs=false go install "$module"
    touch "$CACHE/bin/.$name-${module##*@}"
  fi
done

# The control plane: rebuilt when its module (go.sum) changes; a marker names what was built.
cp_src="$(cd "$(dirname "$0")/controlplane" && pwd)"
cp_bin="$CACHE/controlplane/bin"
cp_mark="$cp_bin/.built-$(sha256sum "$cp_src/go.sum" | cut -c1-16)"
if [[ ! -f "$cp_mark" ]]; then
  command -v go >/dev/null || { say "go is needed to build the control plane (Debian: golang)"; exit 1; }
  say "building a Kubernetes v1.36.3 control plane and etcd from the Go module proxy into $cp_bin"
  say "(one time: about 15 minutes on 2 cores; later runs reuse it)"
  mkdir -p "$cp_bin"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    started=$(date +%s)
    GOFLAGS="-buildvcs=false -mod=readonly" go build -C "$cp_src" -o "$cp_bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    say "  $cmd built in $(($(date +%s) - started)) s"
  done
  GOFLAGS="-buildvcs=false -mod=readonly" go build -C "$cp_src" -o "$cp_bin/etcd" ./cmd/etcd
  say "  etcd built"
  rm -f "$cp_bin"/.built-*
  touch "$cp_mark"
fi

# kwok: fake nodes that report pods running (no containers), for the deploy flow test.
KWOK_VERSION="v0.7.0"
if [[ ! -x "$cp_bin/kwok" || ! -f "$cp_bin/.kwok-$KWOK_VERSION" ]]; then
  say "go install sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION (one time, about 4 minutes on 2 cores)"
  GOBIN="$cp_bin" GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  touch "$cp_bin/.kwok-$KWOK_VERSION"
fi

venv="$CACHE/kubernetes-validate"
if [[ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null || true)" != *"$KUBERNETES_VALIDATE_VERSION"* ]]; then
  command -v python3 >/dev/null || { say "python3 is needed for kubernetes-validate"; exit 1; }
  say "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
say "kustomize $("$CACHE/bin/kustomize" version), kubernetes-validate $("$venv/bin/kubernetes-validate" --version), versitygw $VERSITYGW_VERSION, sops $SOPS_VERSION, cosign $COSIGN_VERSION, syft $SYFT_VERSION, control plane in $cp_bin"

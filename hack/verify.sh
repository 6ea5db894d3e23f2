#!/usr/bin/env bash
# Checks what CI and reviewers rely on: formatting, vet, go.mod/vendor in
# sync with the imports, generated code and manifests up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export GOFLAGS=-mod=vendor
failed=0
step() { echo "verify: $*"; }

step "gofmt"
unformatted="$(gofmt -l $(git ls-files '*.go' | grep -v '^vendor/') 2>&1 || true)"
if [[ -n "${unformatted}" ]]; then
  echo "not gofmt-ed (run gofmt -w):"; echo "${unformatted}"; failed=1
fi

step "go vet"
go vet ./... || failed=1

if [[ "$(go env GOPROXY)" == "off" ]]; then
  # Offline (GOPROXY=off, maybe an empty module cache): tidiness needs the
  # module graph, which only the network has. What can be checked without
  # it: every import of every package and test resolves from vendor/, and
  # vendor/modules.txt agrees with go.mod (the go command refuses
  # -mod=vendor builds otherwise).
  step "vendor/ holds every import and agrees with go.mod (offline: go mod tidy not checked)"
  go list -mod=vendor -deps -test ./... >/dev/null || failed=1
else
  step "go.mod, go.sum and vendor/ match the imports"
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  cp go.mod go.sum "${tmp}/"
  GOFLAGS=-mod=mod go mod tidy
  if ! diff -q go.mod "${tmp}/go.mod" >/dev/null || ! diff -q go.sum "${tmp}/go.sum" >/dev/null; then
    echo "go.mod/go.sum are not tidy (run go mod tidy):"; diff -u "${tmp}/go.mod" go.mod || true
    cp "${tmp}/go.mod" "${tmp}/go.sum" .; failed=1
  fi
  GOFLAGS=-mod=mod go mod vendor -o "${tmp}/vendor"
  if ! diff -rq vendor "${tmp}/vendor" >/dev/null; then
    echo "vendor/ is out of date (run go mod vendor):"; diff -rq vendor "${tmp}/vendor" | head -20 || true; failed=1
  fi
fi

if [[ -x hack/update-codegen.sh ]]; then
  step "generated code and manifests"
  hack/update-codegen.sh --verify || failed=1
fi

if [[ ${failed} -ne 0 ]]; then
  echo "verify: FAILED"; exit 1
fi
echo "verify: OK"

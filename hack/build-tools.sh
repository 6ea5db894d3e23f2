#!/usr/bin/env bash
# Builds the control-plane binaries (etcd, kube-apiserver, kubectl, the
# upstream kube-scheduler) and the code generators from vendor/ into
# _output/tools/<version>/, once. A stamp keyed by go.mod's Kubernetes and
# etcd versions and the Go version makes later runs a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

k8s_version="$(go list -mod=vendor -m -f '{{.Version}}' k8s.io/kubernetes)"
etcd_version="$(go list -mod=vendor -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
go_version="$(go env GOVERSION)"
out="${ROOT}/_output/tools/${k8s_version}-etcd${etcd_version}-${go_version}"
stamp="${out}/.complete"

if [[ -f "${stamp}" ]]; then
  echo "${out}"
  exit 0
fi

mkdir -p "${out}"
export CGO_ENABLED=0
ldflags="-s -w"
build() { # build <output name> <package>
  echo "building $1 from vendor ($2)" >&2
  go build -mod=vendor -trimpath -ldflags "${ldflags}" -o "${out}/$1" "$2"
}
build etcd ./hack/tools/etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
for gen in deepcopy-gen client-gen lister-gen informer-gen applyconfiguration-gen conversion-gen defaulter-gen register-gen; do
  build "${gen}" "k8s.io/code-generator/cmd/${gen}"
done
build controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen
touch "${stamp}"
echo "${out}"

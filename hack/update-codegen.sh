#!/usr/bin/env bash
# Regenerates deepcopy, conversion and defaulting functions, the typed clientset, listers and informers
# and apply configurations (k8s.io/code-generator) and the CRD manifests (controller-gen) from the
# types in pkg/apis, with the generators built from vendor/. Also generates, for tests only, the
# prometheus-operator CRDs the monitoring manifests need (PodMonitor, PrometheusRule), from the
# vendored prometheus-operator API types, so that the test API server validates those manifests,
# and the metrics reference docs/metrics.md (hack/metricsdoc).
# With --verify, checks that the committed files are current and changes nothing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
export GOFLAGS=-mod=vendor

MODULE=github.com/switchyard-sched/switchyard
APIS=(./pkg/apis/switchyard/v1alpha1)
# Plugin Args: internal and kubescheduler.config.k8s.io/v1 types.
CONFIG_APIS=(./pkg/apis/config ./pkg/apis/config/v1)
MONITORING_CRDS=test/crds/monitoring.coreos.com
GENERATED=(pkg/generated manifests/crds "${MONITORING_CRDS}" docs/metrics.md pkg/apis/switchyard/v1alpha1/zz_generated.deepcopy.go
  pkg/apis/config/zz_generated.deepcopy.go pkg/apis/config/v1/zz_generated.deepcopy.go
  pkg/apis/config/v1/zz_generated.conversion.go pkg/apis/config/v1/zz_generated.defaults.go)
HEADER="${ROOT}/hack/boilerplate.go.txt"
TOOLS="$(hack/build-tools.sh)"

# clean removes what generate writes (manifests/crds keeps its kustomization.yaml).
clean() {
  rm -rf pkg/generated "${MONITORING_CRDS}" docs/metrics.md
  rm -f manifests/crds/switchyard.io_*.yaml
}

generate() {
  clean
  "${TOOLS}/deepcopy-gen" --go-header-file "${HEADER}" --output-file zz_generated.deepcopy.go "${APIS[@]}" "${CONFIG_APIS[@]}"
  "${TOOLS}/conversion-gen" --go-header-file "${HEADER}" --output-file zz_generated.conversion.go \
    --extra-peer-dirs k8s.io/apimachinery/pkg/apis/meta/v1 ./pkg/apis/config/v1
  "${TOOLS}/defaulter-gen" --go-header-file "${HEADER}" --output-file zz_generated.defaults.go ./pkg/apis/config/v1
  "${TOOLS}/applyconfiguration-gen" --go-header-file "${HEADER}" \
    --output-pkg "${MODULE}/pkg/generated/applyconfiguration" --output-dir pkg/generated/applyconfiguration "${APIS[@]}"
  "${TOOLS}/client-gen" --go-header-file "${HEADER}" --clientset-name versioned --input-base "" \
    --apply-configuration-package "${MODULE}/pkg/generated/applyconfiguration" \
    --input "${MODULE}/pkg/apis/switchyard/v1alpha1" \
    --output-pkg "${MODULE}/pkg/generated/clientset" --output-dir pkg/generated/clientset
  "${TOOLS}/lister-gen" --go-header-file "${HEADER}" \
    --output-pkg "${MODULE}/pkg/generated/listers" --output-dir pkg/generated/listers "${APIS[@]}"
  "${TOOLS}/informer-gen" --go-header-file "${HEADER}" \
    --versioned-clientset-package "${MODULE}/pkg/generated/clientset/versioned" \
    --listers-package "${MODULE}/pkg/generated/listers" \
    --output-pkg "${MODULE}/pkg/generated/informers" --output-dir pkg/generated/informers "${APIS[@]}"
  "${TOOLS}/controller-gen" crd paths=./pkg/apis/switchyard/... output:crd:dir=./manifests/crds
  mkdir -p "${MONITORING_CRDS}"
  "${TOOLS}/controller-gen" crd:maxDescLen=0 \
    paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
    output:crd:dir="./${MONITORING_CRDS}"
  # Only the kinds the shipped manifests use.
  find "${MONITORING_CRDS}" -name '*.yaml' ! -name '*_podmonitors.yaml' ! -name '*_prometheusrules.yaml' -delete
  # The metrics reference, from the components' metric definitions.
  go run ./hack/metricsdoc > docs/metrics.md
}

if [[ "${1:-}" == "--verify" ]]; then
  snapshot="$(mktemp -d)"
  trap 'rm -rf "${snapshot}"' EXIT
  tar -cf "${snapshot}/committed.tar" "${GENERATED[@]}" 2>/dev/null || true
  generate
  mkdir -p "${snapshot}/committed" && tar -xf "${snapshot}/committed.tar" -C "${snapshot}/committed" 2>/dev/null || true
  status=0
  for path in "${GENERATED[@]}"; do
    if ! diff -r "${snapshot}/committed/${path}" "${path}" >/dev/null 2>&1; then
      echo "out of date: ${path} (run hack/update-codegen.sh)"; status=1
    fi
  done
  # Put the committed files back: verify changes nothing.
  clean
  tar -xf "${snapshot}/committed.tar"
  exit "${status}"
fi
generate

// Package localcluster runs a real Kubernetes control plane on loopback for
// Switchyard's integration tests, benchmarks and demo: etcd and
// kube-apiserver built from vendor/ (started through controller-runtime's
// envtest), simulated nodes, simulated kubelets that mark bound pods Running,
// and Switchyard's own components started in-process.
//
// Every integration test, benchmark and the demo use this one package, so a
// fix to how the cluster is stood up reaches all of them.
package localcluster

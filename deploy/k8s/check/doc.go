// Package check holds no code: its tests decode the manifests under
// deploy/k8s strictly into their Kubernetes types, build each kustomization
// and check what the service relies on (see manifests_test.go).
package check

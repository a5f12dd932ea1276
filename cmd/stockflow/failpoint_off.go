//go:build !failpoints

package main

import "github.com/stockflow/stockflow/pkg/service"

// failpoints does nothing: failure points exist only in binaries built with
// -tags failpoints.
func failpoints(*service.Options) {}

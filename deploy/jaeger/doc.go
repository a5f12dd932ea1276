// Package jaeger pins the Jaeger v2 all-in-one build used by the local stack.
// It lives in its own module so that Jaeger's dependencies never enter the
// service's go.mod; deploy/local/jaeger.sh builds the tool into the cache.
package jaeger

//go:build tools

// Package tools pins the Prometheus built for the alert tests (its web UI is not embedded:
// the tests use the API only).
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"

//go:build tools

// Package tools pins the Prometheus built for the alert tests (its web UI is not embedded:
// the tests use the API only) and the promtool that checks the chart's rules.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)

//go:build tools

// Package tools pins the Alertmanager built for the alert tests (its UI ships prebuilt in
// this release's module; later releases need an npm build of it).
package tools

import _ "github.com/prometheus/alertmanager/cmd/alertmanager"

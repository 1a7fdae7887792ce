//go:build tools

// Package tools pins Koperator's manager (its main package) for `go build`.
package tools

import _ "github.com/banzaicloud/koperator"

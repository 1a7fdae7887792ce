//go:build tools

// Package tools pins the Contour built for the external-access tests (contour serve and
// contour bootstrap in front of Envoy).
package tools

import _ "github.com/projectcontour/contour/cmd/contour"

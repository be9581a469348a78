//go:build tools

// Package ferretdb pins the FerretDB release that the local dev stack builds.
// devstack.py vendors this module in a temporary copy and builds the binary from it.
package ferretdb

import _ "github.com/FerretDB/FerretDB/cmd/ferretdb"

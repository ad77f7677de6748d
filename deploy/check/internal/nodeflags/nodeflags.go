// Package nodeflags knows the roomcast-node command line, so that the
// deployment checks refuse a flag the node does not have.
package nodeflags

import (
	"encoding/base64"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Design is the command line of DESIGN.md plus the deployment flags
// (--keys-replicas, --drain-window, --drain-grace): the fallback when the
// node's source is not there to read.
var Design = []string{
	"listen", "nats", "nats-listen", "node-id", "api-key", "origins", "gossip-bind",
	"gossip-join", "data-dir", "key-ttl", "config",
	"keys-replicas", "drain-window", "drain-grace",
}

// Load returns the flag names of the node's option table: the []option
// composite literal in cmd/node/config.go, whose rows start with the name.
// A missing file gives Design; a file without the table gives an error.
func Load(file string) ([]string, error) {
	if _, err := os.Stat(file); os.IsNotExist(err) {
		return slices.Clone(Design), nil
	}
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, err
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		arr, ok := lit.Type.(*ast.ArrayType)
		if !ok {
			return true
		}
		if id, ok := arr.Elt.(*ast.Ident); !ok || id.Name != "option" {
			return true
		}
		for _, e := range lit.Elts {
			row, ok := e.(*ast.CompositeLit)
			if !ok || len(row.Elts) == 0 {
				continue
			}
			if b, ok := row.Elts[0].(*ast.BasicLit); ok && b.Kind == token.STRING {
				if s, err := strconv.Unquote(b.Value); err == nil {
					names = append(names, s)
				}
			}
		}
		return false
	})
	if len(names) == 0 {
		return nil, &os.PathError{Op: "read flags", Path: file, Err: os.ErrNotExist}
	}
	return names, nil
}

// CheckGossipKey checks a --gossip-key value the way the node reads it
// (pkg/gossip.ParseKeys; this module does not import the product's):
// base64 keys of 16, 24 or 32 bytes, comma separated. Errors never show
// the key.
func CheckGossipKey(v string) error {
	for i, p := range strings.Split(v, ",") {
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("gossip key %d is not base64: %v", i+1, err)
		}
		if n := len(k); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("gossip key %d is %d bytes, not 16, 24 or 32", i+1, n)
		}
	}
	return nil
}

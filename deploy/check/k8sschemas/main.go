// Command k8sschemas turns the Kubernetes OpenAPI v2 document (swagger.json,
// as shipped in the k8s.io/kubernetes Go module under api/openapi-spec) into
// one standalone, strict JSON schema per kind, named the way kubeconform looks
// schemas up: <kind><kindSuffix>.json, e.g. deployment-apps-v1.json,
// service-v1.json, ingress-networking-v1.json.
//
// Usage: k8sschemas -in swagger.json -out DIR [-crd crd.json,...]
//
// -crd adds the schemas of CustomResourceDefinitions given as JSON files
// (apiextensions.k8s.io/v1), e.g. the Prometheus Operator's ServiceMonitor:
// strict the same way, and "nullable: true" becomes a null type.
//
// Point kubeconform at the result with
//
//	-schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json'
//
// What the conversion does, as the usual openapi2jsonschema scripts do:
//   - each file carries only the definitions its kind reaches, under
//     "definitions", so "$ref": "#/definitions/..." resolves inside the file;
//   - strict: every object schema with "properties" and no
//     "additionalProperties" gets "additionalProperties": false, so a
//     misspelled or misplaced field is an error;
//   - IntOrString accepts a string or an integer, Quantity a string or a number;
//   - optional (not required) fields also accept null, as the API server does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const refPrefix = "#/definitions/"

type gvk struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

func main() {
	in := flag.String("in", "", "path of the Kubernetes swagger.json (OpenAPI v2)")
	out := flag.String("out", "", "directory to write the schemas into")
	crds := flag.String("crd", "", "comma-separated CustomResourceDefinition JSON files")
	flag.Parse()
	if *in == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "k8sschemas:", err)
		os.Exit(1)
	}
	if *crds != "" {
		for _, f := range strings.Split(*crds, ",") {
			if err := crd(f, *out); err != nil {
				fmt.Fprintln(os.Stderr, "k8sschemas:", err)
				os.Exit(1)
			}
		}
	}
}

// crd writes one schema per served version of a CustomResourceDefinition.
func crd(file, out string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var doc struct {
		Kind string `json:"kind"`
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if doc.Kind != "CustomResourceDefinition" || doc.Spec.Names.Kind == "" {
		return fmt.Errorf("%s: not a CustomResourceDefinition", file)
	}
	n := 0
	for _, v := range doc.Spec.Versions {
		if v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		schema := crdWalk(v.Schema.OpenAPIV3Schema).(map[string]any)
		schema["$schema"] = "http://json-schema.org/draft-04/schema#"
		name := strings.ToLower(doc.Spec.Names.Kind) + kindSuffix(doc.Spec.Group+"/"+v.Name) + ".json"
		data, err := json.Marshal(schema)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%s: no version has a schema", file)
	}
	fmt.Printf("k8sschemas: wrote %d schemas of %s.%s\n", n, doc.Spec.Names.Kind, doc.Spec.Group)
	return nil
}

// crdWalk makes a structural CRD schema strict and turns "nullable" into a
// null type, as the API server treats them.
func crdWalk(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x)+1)
		for k, val := range x {
			out[k] = crdWalk(val)
		}
		if _, hasProps := out["properties"]; hasProps {
			preserve, _ := out["x-kubernetes-preserve-unknown-fields"].(bool)
			if _, ok := out["additionalProperties"]; !ok && !preserve {
				out["additionalProperties"] = false
			}
		}
		if nb, _ := out["nullable"].(bool); nb {
			delete(out, "nullable")
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = crdWalk(val)
		}
		return out
	default:
		return v
	}
}

func run(in, out string) error {
	raw, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(doc.Definitions) == 0 {
		return fmt.Errorf("%s: no definitions", in)
	}
	defs := map[string]any{}
	for name, d := range doc.Definitions {
		defs[name] = transform(name, d)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	written := 0
	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := doc.Definitions[name]
		list, ok := d["x-kubernetes-group-version-kind"].([]any)
		if !ok {
			continue
		}
		for _, item := range list {
			b, _ := json.Marshal(item)
			var g gvk
			if err := json.Unmarshal(b, &g); err != nil || g.Kind == "" || g.Version == "" {
				continue
			}
			apiVersion := g.Version
			if g.Group != "" {
				apiVersion = g.Group + "/" + g.Version
			}
			// Event-like helper types (WatchEvent, DeleteOptions) are listed
			// under every group; only keep the entry whose group owns the type.
			if !ownsType(name, g) {
				continue
			}
			schema := standalone(name, defs)
			file := filepath.Join(out, strings.ToLower(g.Kind)+kindSuffix(apiVersion)+".json")
			data, err := json.Marshal(schema)
			if err != nil {
				return err
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				return err
			}
			written++
		}
	}
	if written == 0 {
		return fmt.Errorf("%s: no kinds found", in)
	}
	fmt.Printf("k8sschemas: wrote %d schemas to %s\n", written, out)
	return nil
}

// ownsType keeps a definition for a group-version-kind only when the
// definition's package matches that group (or is the shared meta package).
func ownsType(name string, g gvk) bool {
	if strings.HasPrefix(name, "io.k8s.apimachinery.") {
		return g.Group == "" && g.Version == "v1"
	}
	return true
}

// kindSuffix is kubeconform's: "-" + first dot-part of the group (or the
// version for the core group) + "-" + version.
func kindSuffix(apiVersion string) string {
	groupParts := strings.Split(apiVersion, "/")
	versionParts := strings.Split(groupParts[0], ".")
	s := "-" + strings.ToLower(versionParts[0])
	if len(groupParts) > 1 {
		s += "-" + strings.ToLower(groupParts[1])
	}
	return s
}

// transform rewrites one definition: special string types, strictness and
// nullable optional fields.
func transform(name string, d map[string]any) any {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"description": d["description"], "oneOf": []any{
			map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"description": d["description"], "oneOf": []any{
			map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	return walk(d)
}

func walk(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x)+1)
		for k, val := range x {
			if k == "x-kubernetes-group-version-kind" {
				continue
			}
			out[k] = walk(val)
		}
		if f, _ := out["format"].(string); f == "int-or-string" {
			delete(out, "format")
			delete(out, "type")
			out["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
		}
		props, hasProps := out["properties"].(map[string]any)
		if hasProps {
			preserve, _ := out["x-kubernetes-preserve-unknown-fields"].(bool)
			if _, ok := out["additionalProperties"]; !ok && !preserve {
				out["additionalProperties"] = false
			}
			required := map[string]bool{}
			if req, ok := out["required"].([]any); ok {
				for _, r := range req {
					if s, ok := r.(string); ok {
						required[s] = true
					}
				}
			}
			for pname, p := range props {
				if !required[pname] {
					props[pname] = nullable(p)
				}
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = walk(val)
		}
		return out
	default:
		return v
	}
}

// nullable lets an optional property be null as well.
func nullable(p any) any {
	m, ok := p.(map[string]any)
	if !ok {
		return p
	}
	if t, ok := m["type"].(string); ok {
		m["type"] = []any{t, "null"}
		return m
	}
	if ref, ok := m["$ref"].(string); ok {
		out := map[string]any{"anyOf": []any{map[string]any{"$ref": ref}, map[string]any{"type": "null"}}}
		if d, ok := m["description"]; ok {
			out["description"] = d
		}
		return out
	}
	return m
}

// standalone returns the definition of name as a root schema whose
// "definitions" hold everything it reaches.
func standalone(name string, defs map[string]any) map[string]any {
	reach := map[string]any{}
	var visit func(v any)
	visit = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, refPrefix) {
				target := strings.TrimPrefix(ref, refPrefix)
				if _, seen := reach[target]; !seen {
					if d, ok := defs[target]; ok {
						reach[target] = d
						visit(d)
					}
				}
			}
			for _, val := range x {
				visit(val)
			}
		case []any:
			for _, val := range x {
				visit(val)
			}
		}
	}
	root := map[string]any{}
	for k, v := range defs[name].(map[string]any) {
		root[k] = v
	}
	visit(root)
	root["$schema"] = "http://json-schema.org/draft-04/schema#"
	if len(reach) > 0 {
		root["definitions"] = reach
	}
	return root
}

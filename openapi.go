// Package resizer holds the service's HTTP contract, openapi.yaml, for the
// server to serve and for tests to check responses against. The code lives
// under cmd/ and internal/.
package resizer

import _ "embed"

// OpenAPI is the text of openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

//go:generate go tool oapi-codegen -config api/oapi-codegen.yaml openapi.yaml

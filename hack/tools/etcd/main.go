// Command etcd is upstream etcd's server entry point, built from the published
// go.etcd.io/etcd/server/v3 module (its own go.mod uses relative replace
// directives, so it cannot be installed with `go install` directly).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

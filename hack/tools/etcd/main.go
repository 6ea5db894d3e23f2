// Command etcd is the etcd server built from vendor/ for the local control
// plane that tests, benchmarks and the demo start; upstream's own main does
// nothing more than this.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}

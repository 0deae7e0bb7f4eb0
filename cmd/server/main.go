// Command server is the resizer HTTP service. Configuration comes from
// environment variables; run it with -h to list them.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/resizer/resizer/internal/imageproc"
)

func main() {
	err := run(context.Background(), os.Args, os.Getenv, os.Stdout)
	// libvips cannot be restarted in a process, so it is stopped here, at
	// the very end, rather than in run, which tests call many times.
	imageproc.Shutdown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "resizer:", err)
		os.Exit(1)
	}
}

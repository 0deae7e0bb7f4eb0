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
	// The server runs its image work in copies of itself (see imageproc).
	imageproc.ServeWorkerIfAsked()
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "resizer:", err)
		os.Exit(1)
	}
}

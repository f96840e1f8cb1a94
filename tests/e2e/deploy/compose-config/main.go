// compose-config loads a compose file the way `docker compose config` does, with
// compose-go, the library docker compose is built on: the Compose Specification's schema,
// interpolation of ${VAR} from the environment (only: no .env file is read, so a run
// depends on nothing but what it is given), relative paths resolved against the file's
// folder, and the model's own consistency checks (networks, volumes and services that are
// named must exist). It prints the resulting model as JSON on stdout, or the error on
// stderr with exit status 1.
//
//	compose-config deploy/compose/compose.yaml
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config COMPOSE-FILE")
		os.Exit(2)
	}
	file, err := filepath.Abs(os.Args[1])
	if err != nil {
		fail(err)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithOsEnv,
		cli.WithDiscardEnvFile,
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fail(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(project, "", "  ")
	if err != nil {
		fail(err)
	}
	os.Stdout.Write(append(out, '\n'))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "compose-config:", err)
	os.Exit(1)
}

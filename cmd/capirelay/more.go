package main

import (
	"context"
	"fmt"
	"io"
)

// runMore dispatches the subcommands that other files add.
func runMore(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv getenvFunc) error {
	switch cmd {
	case "leads":
		return runLeadsEnv(ctx, args, stdin, stdout, stderr, getenv)
	case "import":
		return runImport(ctx, args, stdout, stderr, getenv)
	case "validate":
		return runValidateStdin(ctx, args, stdin, stdout, stderr)
	case "admin":
		return runAdmin(ctx, args, stdin, stdout, stderr, getenv)
	case "forget":
		return runForgetEnv(ctx, args, stdin, stdout, stderr, getenv)
	}
	fmt.Fprintf(stderr, "capirelay: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

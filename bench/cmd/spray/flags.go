package main

import (
	"flag"
	"os"
)

func flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("spray", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}
